import { describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { eventually } from '../helpers/pipeline.js';

const BATCH_ADD = '/api/integrate/audience/group/rel/batchAdd';

describe('tuzhan-cdc mock-api', () => {
  it('serves batchAdd and /__sim/groups over HTTP, and exits 0 on SIGTERM', async () => {
    const mock = startCli(['mock-api', '--listen', '127.0.0.1:0', '--token', 'cli-token']);
    // Port 0: the line it prints names the port it got.
    const url = await eventually(() => {
      const m = /^mock-api listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(mock.stdout());
      expect(m, mock.stdout() + mock.stderr()).not.toBeNull();
      return (m as RegExpExecArray)[1] as string;
    }, 30_000);
    // Without --registry it says at once what that means for isMatching: true.
    expect(mock.stdout()).toMatch(/^no --registry: requests with isMatching: true match no customer/m);

    const post = (token: string, body: unknown): Promise<Response> =>
      fetch(`${url}${BATCH_ADD}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-token': token },
        body: JSON.stringify(body),
      });
    const add = {
      publicParams: { isMatching: false, optType: 'add' },
      data: [
        { thirdId: 'c1', groups: 'vip,north' },
        { thirdId: 'c2', groups: 'south' },
      ],
    };

    const denied = await post('wrong-token', add);
    expect(await denied.json()).toMatchObject({ code: '100200' });

    const ok = await post('cli-token', add);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      code: '200',
      data: { status: 1, importSuccessNum: 2, importFailNum: 0, errorData: null },
    });

    const groups = await fetch(`${url}/__sim/groups?thirdId=c1`);
    expect(groups.status).toBe(200);
    expect(await groups.json()).toEqual({ groups: ['north', 'vip'] });
    // The refused request changed nothing: only c1 and c2 have state.
    expect((await fetch(`${url}/__sim/groups?thirdId=c3`)).status).toBe(404);

    mock.child.kill('SIGTERM');
    const exit = await mock.exited;
    expect(exit, exit.stderr).toMatchObject({ code: 0, signal: null, stderr: '' });
  });
});
