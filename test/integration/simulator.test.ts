import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseListen, startMockApi } from '../../src/cli/mock-api.js';
import { loadRegistry } from '../../src/simulator/model.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { tempDir } from '../helpers/cleanup.js';
import { eventually } from '../helpers/pipeline.js';

const TOKEN = 'sim-token';
const PATH = '/api/integrate/audience/group/rel/batchAdd';
const OPEN_PATH = '/api/open/audience/group/rel/batchAdd';
const ADD = { isMatching: false, optType: 'add' };

let sim: Simulator;

interface Answer {
  http: number;
  headers: Headers;
  body: { code: string; errorCode: string; msg: string; data: Record<string, unknown> | null };
}

async function call(
  body: unknown,
  opts: { token?: string | null; path?: string; raw?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const token = opts.token === undefined ? TOKEN : opts.token;
  if (token !== null) headers['x-token'] = token;
  const res = await fetch(`${sim.url}${opts.path ?? PATH}`, {
    method: 'POST',
    headers,
    body: opts.raw ?? JSON.stringify(body),
  });
  return { http: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
}

const send = (publicParams: unknown, data: unknown[]) => call({ publicParams, data });

beforeAll(async () => {
  sim = await startSimulator({
    token: TOKEN,
    appId: 'app',
    appSecret: 'secret',
    registry: [
      { thirdId: 't1', phone: 'p1' },
      { phone: 'p2', unionid: 'u2' },
      { openid: 'o3', unionid: 'u3' },
    ],
  });
});
afterEach(() => sim.reset());
afterAll(() => sim.close());

describe('validation: the whole request is rejected with HTTP 400, code "400", PARAM_ERROR', () => {
  const row = { thirdId: 'c1', groups: 'g' };
  const cases: Array<[string, unknown, string]> = [
    ['publicParams missing', { data: [row] }, 'publicParams'],
    ['isMatching missing', { publicParams: { optType: 'add' }, data: [row] }, 'isMatching'],
    [
      'isMatching not boolean',
      { publicParams: { isMatching: 'false', optType: 'add' }, data: [row] },
      'isMatching',
    ],
    ['optType missing', { publicParams: { isMatching: false }, data: [row] }, 'optType'],
    ['optType unknown', { publicParams: { isMatching: false, optType: 'insert' }, data: [row] }, 'optType'],
    ['optType as int', { publicParams: { isMatching: false, optType: 1 }, data: [row] }, 'optType'],
    ['matchingType 3', { publicParams: { ...ADD, matchingType: 3 }, data: [row] }, 'matchingType'],
    [
      'matching without matchingType',
      { publicParams: { isMatching: true, optType: 'add' }, data: [row] },
      'matchingType',
    ],
    [
      'fuzzy without identifyWay',
      { publicParams: { isMatching: true, matchingType: 2, optType: 'add' }, data: [row] },
      'identifyWay',
    ],
    [
      'identifyWay 3',
      { publicParams: { isMatching: true, matchingType: 2, identifyWay: 3, optType: 'add' }, data: [row] },
      'identifyWay',
    ],
    [
      'exact without accurateMatchType',
      { publicParams: { isMatching: true, matchingType: 1, optType: 'add' }, data: [row] },
      'accurateMatchType',
    ],
    [
      'exact with unknown accurateMatchType',
      {
        publicParams: { isMatching: true, matchingType: 1, accurateMatchType: 'qq', optType: 'add' },
        data: [row],
      },
      'accurateMatchType',
    ],
    ['unknown publicParams field', { publicParams: { ...ADD, foo: 1 }, data: [row] }, 'publicParams.foo'],
    ['data missing', { publicParams: ADD }, 'data'],
    ['data empty', { publicParams: ADD, data: [] }, 'at least 1'],
    [
      'data 501 rows',
      { publicParams: ADD, data: Array.from({ length: 501 }, (_, i) => ({ thirdId: `c${i}` })) },
      'at most 500',
    ],
    ['row not an object', { publicParams: ADD, data: [row, 'c2'] }, 'data[1]'],
    ['null identity', { publicParams: ADD, data: [row, { thirdId: 'c2', phone: null }] }, 'data[1].phone'],
    ['empty identity', { publicParams: ADD, data: [{ thirdId: '', phone: '1' }] }, 'data[0].thirdId'],
    ['empty groups', { publicParams: ADD, data: [{ thirdId: 'c', groups: '' }] }, 'data[0].groups'],
    ['number identity', { publicParams: ADD, data: [{ phone: 13800000000 }] }, 'data[0].phone'],
    ['unknown row field', { publicParams: ADD, data: [{ thirdId: 'c', email: 'x@y' }] }, 'data[0].email'],
    [
      'unknown identityType',
      { publicParams: ADD, data: [{ thirdId: 'c', identityType: 'email' }] },
      'identityType',
    ],
  ];
  it.each(cases)('%s', async (_name, body, field) => {
    const a = await call(body);
    expect(a.http).toBe(400);
    expect(a.body).toMatchObject({ code: '400', errorCode: 'PARAM_ERROR', data: null });
    expect(a.body.msg).toContain(field);
    expect(sim.groupsOf('thirdId', 'c1')).toBeUndefined();
    expect(sim.stats()).toMatchObject({ rejected: 1, byOptType: { add: { requests: 0, rows: 0 } } });
  });

  it('malformed JSON', async () => {
    const a = await call(undefined, { raw: '{"publicParams": ' });
    expect(a).toMatchObject({ http: 400, body: { code: '400', errorCode: 'PARAM_ERROR' } });
    expect(a.body.msg).toContain('JSON');
  });

  it('accepts exactly 500 rows, on both paths', async () => {
    const data = Array.from({ length: 500 }, (_, i) => ({ thirdId: `c${i}`, groups: 'g' }));
    for (const path of [PATH, OPEN_PATH]) {
      const a = await call({ publicParams: ADD, data }, { path });
      expect(a.body.data).toMatchObject({
        status: 1,
        importSuccessNum: 500,
        importFailNum: 0,
        errorData: null,
      });
    }
    expect(sim.groupsOf('thirdId', 'c499')).toEqual(['g']);
  });
});

describe('tokens', () => {
  it('answers code 100200 (HTTP 200, or 401 on request) to a missing or wrong X-Token', async () => {
    for (const token of [null, 'wrong']) {
      const a = await call({ publicParams: ADD, data: [{ thirdId: 'c1' }] }, { token });
      expect(a).toMatchObject({ http: 200, body: { code: '100200', errorCode: 'TOKEN_INVALID' } });
    }
    sim.setFaults({ tokenErrorAs401: true });
    const a = await call({ publicParams: ADD, data: [{ thirdId: 'c9' }] }, { token: 'wrong' });
    expect(a).toMatchObject({ http: 401, body: { code: '100200' } });
    expect(sim.groupsOf('thirdId', 'c9')).toBeUndefined();
    expect(sim.stats().authFailures).toBe(3);
  });

  it('issues tokens for the right app pair, refuses a wrong one with 100100, and expires them', async () => {
    const get = async (id: string, secret: string) =>
      (await (
        await fetch(`${sim.url}/api/open/app/getOrgAccessToken?instanceAppid=${id}&instanceSecrect=${secret}`)
      ).json()) as Answer['body'];
    expect(await get('app', 'bad')).toMatchObject({ code: '100100' });
    const ok = await get('app', 'secret');
    expect(ok).toMatchObject({ code: '200', data: { expire: 7200 } });
    const token = ok.data?.orgAccessToken as string;
    expect(typeof ok.data?.orgRefreshToken).toBe('string');
    expect((await call({ publicParams: ADD, data: [{ thirdId: 'c1' }] }, { token })).body.code).toBe('200');
    sim.setFaults({ expireTokens: true });
    expect((await call({ publicParams: ADD, data: [{ thirdId: 'c1' }] }, { token })).body.code).toBe(
      '100200',
    );
    expect((await send(ADD, [{ thirdId: 'c1' }])).body.code).toBe('200'); // the static token never expires
    expect(sim.stats()).toMatchObject({ tokenFetches: 1, tokenRefusals: 1 });
  });

  it('issued tokens expire after tokenTtlSeconds', async () => {
    const short = await startSimulator({ appId: 'a', appSecret: 's', tokenTtlSeconds: 0.3 });
    try {
      const asked = Date.now();
      const t = (await (
        await fetch(`${short.url}/api/open/app/getOrgAccessToken?instanceAppid=a&instanceSecrect=s`)
      ).json()) as Answer['body'];
      const post = () =>
        fetch(`${short.url}${PATH}`, {
          method: 'POST',
          headers: { 'x-token': t.data?.orgAccessToken as string },
          body: JSON.stringify({ publicParams: ADD, data: [{ thirdId: 'x' }] }),
        }).then((r) => r.json() as Promise<Answer['body']>);
      expect((await post()).code).toBe('200');
      // Refused once it expired, and not before: no sooner than 300 ms after it was asked for.
      await eventually(async () => expect((await post()).code).toBe('100200'), 10_000, 20);
      expect(Date.now() - asked).toBeGreaterThanOrEqual(300);
    } finally {
      await short.close();
    }
  });
});

describe('matching and per-row failures', () => {
  const FUZZY1 = { isMatching: true, matchingType: 2, identifyWay: 1, optType: 'add' };
  const FUZZY2 = { ...FUZZY1, identifyWay: 2 };
  const EXACT = {
    isMatching: true,
    matchingType: 1,
    accurateMatchType: 'gzh',
    accurateMatchValue: 'wx1',
    optType: 'add',
  };

  it('identifyWay 2 tries thirdId first, identifyWay 1 tries unionid/openid/phone first', async () => {
    await send(FUZZY2, [{ thirdId: 't1', phone: 'p2', groups: 'way2' }]);
    await send(FUZZY1, [{ thirdId: 't1', phone: 'p2', groups: 'way1' }]);
    expect(sim.groupsOf('thirdId', 't1')).toEqual(['way2']);
    expect(sim.groupsOf('phone', 'p2')).toEqual(['way1']);
    expect(sim.groupsOf('unionid', 'u2')).toEqual(['way1']); // same customer, another identity
  });

  it('the first identity in order that finds a customer decides; unknown ones are skipped', async () => {
    const a = await send(FUZZY1, [{ unionid: 'nobody', thirdId: 't1', groups: 'g' }]);
    expect(a.body.data).toMatchObject({ status: 1 });
    expect(sim.groupsOf('phone', 'p1')).toEqual(['g']);
  });

  it('exact matching uses identityType only', async () => {
    const a = await send(EXACT, [
      { identityType: 'openid', openid: 'o3', groups: 'e' },
      { identityType: 'phone', phone: 'unknown', thirdId: 't1', groups: 'e' },
      { thirdId: 't1', groups: 'e' },
      { identityType: 'unionid', openid: 'o3', groups: 'e' },
    ]);
    expect(a.http).toBe(200);
    expect(a.body.data).toMatchObject({ status: 2, importSuccessNum: 1, importFailNum: 3 });
    const errors = a.body.data?.errorData as Array<Record<string, string>>;
    expect(errors.map((e) => e.errorMsg)).toEqual([
      'no customer matches phone',
      'identityType is required for exact matching',
      'identityType is unionid but the row has no unionid',
    ]);
    expect(errors[0]).toMatchObject({ identityType: 'phone', phone: 'unknown', thirdId: 't1', groups: 'e' });
    expect(sim.groupsOf('unionid', 'u3')).toEqual(['e']);
    expect(sim.groupsOf('thirdId', 't1')).toBeUndefined();
  });

  it('with matching, unknown customers and rows without identity fail; all failing gives status -1', async () => {
    const a = await send(FUZZY2, [{ thirdId: 'ghost', groups: 'g' }, { groups: 'g' }]);
    expect(a.body.data).toMatchObject({ status: -1, importSuccessNum: 0, importFailNum: 2 });
    expect((a.body.data?.errorData as Array<{ errorMsg: string }>).map((e) => e.errorMsg)).toEqual([
      'no customer matches the row',
      'row has no identity',
    ]);
    expect(sim.stats().byOptType.add).toMatchObject({ requests: 1, rows: 2, failed: 2, synced: 0 });
  });

  it('without matching, a customer is its own first identity (thirdId > phone > openid > unionid)', async () => {
    await send(ADD, [{ phone: 'p9', openid: 'o9', groups: 'a' }, { groups: 'nobody' }]);
    expect(sim.groupsOf('phone', 'p9')).toEqual(['a']);
    expect(sim.groupsOf('openid', 'o9')).toBeUndefined();
    const res = await fetch(`${sim.url}/__sim/groups?phone=p9`);
    expect(await res.json()).toEqual({ groups: ['a'] });
    expect((await fetch(`${sim.url}/__sim/groups?openid=o9`)).status).toBe(404);
  });
});

describe('group semantics', () => {
  const op = (optType: string, groups?: string) =>
    send({ isMatching: false, optType }, [
      groups === undefined ? { thirdId: 'c1' } : { thirdId: 'c1', groups },
    ]);
  const groups = () => sim.groupsOf('thirdId', 'c1');

  it('add unions, update replaces, delete removes the given groups or all of them; all idempotent', async () => {
    await op('add', 'a,b');
    await op('add', 'b, c');
    await op('add', 'b, c');
    expect(groups()).toEqual(['a', 'b', 'c']);
    await op('update', 'x,y');
    await op('update', 'x,y');
    expect(groups()).toEqual(['x', 'y']);
    await op('delete', 'x,zz');
    await op('delete', 'x');
    expect(groups()).toEqual(['y']);
    await op('add', 'q');
    await op('delete');
    expect(groups()).toEqual([]);
    await op('delete');
    expect(groups()).toEqual([]);
  });

  it('delete or update of an unknown customer succeeds; update creates it', async () => {
    expect((await op('delete', 'a')).body.data).toMatchObject({ status: 1 });
    expect(groups()).toBeUndefined();
    await op('update', 'u');
    expect(groups()).toEqual(['u']);
  });

  it('stats count rows by optType and outcome', async () => {
    await op('add', 'a');
    await op('update', 'b');
    await send({ isMatching: true, matchingType: 2, identifyWay: 2, optType: 'delete' }, [
      { thirdId: 't1' },
      { thirdId: 'no' },
    ]);
    const s = (await (await fetch(`${sim.url}/__sim/stats`)).json()) as ReturnType<Simulator['stats']>;
    expect(s).toMatchObject({
      requests: 3,
      byOptType: {
        add: { requests: 1, rows: 1, synced: 1 },
        update: { requests: 1, rows: 1, synced: 1 },
        delete: { requests: 1, rows: 2, synced: 1, failed: 1 },
      },
    });
  });
});

describe('faults', () => {
  const one = { publicParams: ADD, data: [{ thirdId: 'f1', groups: 'g' }] };

  it('latency delays answers', async () => {
    sim.setFaults({ latencyMs: 150 });
    const started = Date.now();
    await call(one);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('errorRate answers HTTP 500 without applying', async () => {
    sim.setFaults({ errorRate: 1 });
    const a = await call(one);
    expect(a).toMatchObject({ http: 500, body: { code: '500', errorCode: 'SYSTEM_ERROR' } });
    expect(sim.groupsOf('thirdId', 'f1')).toBeUndefined();
    expect(sim.stats().served500).toBe(1);
  });

  it('status429 answers the next N requests with 429 and Retry-After, without applying', async () => {
    sim.setFaults({ status429: 2 });
    for (let i = 0; i < 2; i++) {
      const a = await call(one);
      expect(a.http).toBe(429);
      expect(a.headers.get('retry-after')).toBe('1');
    }
    expect(sim.groupsOf('thirdId', 'f1')).toBeUndefined();
    expect((await call(one)).http).toBe(200);
    expect(sim.stats().served429).toBe(2);
  });

  it('rateLimit answers 429 with Retry-After past N requests a second, without applying; changeable at run time', async () => {
    expect(
      (await fetch(`${sim.url}/__sim/faults`, { method: 'POST', body: '{"rateLimit": 3}' })).status,
    ).toBe(200);
    // Ten at once: the quota's second's worth (3) goes through, and what it refilled meanwhile.
    const started = Date.now();
    const rows = Array.from({ length: 10 }, (_, i) => ({ thirdId: `q${i}`, groups: 'g' }));
    const answers = await Promise.all(rows.map((r) => send(ADD, [r])));
    const seconds = (Date.now() - started) / 1000;
    const taken = answers.filter((a) => a.http === 200);
    const refused = answers.filter((a) => a.http === 429);
    expect(taken.length + refused.length).toBe(10);
    expect(taken.length).toBeGreaterThanOrEqual(3);
    expect(taken.length).toBeLessThanOrEqual(3 + Math.ceil(3 * seconds));
    for (const a of refused) {
      expect(a.body).toMatchObject({ code: '429', errorCode: 'TOO_MANY_REQUESTS' });
      expect(a.headers.get('retry-after')).toBe('1');
    }
    const applied = rows.filter((r) => sim.groupsOf('thirdId', r.thirdId) !== undefined);
    expect(applied).toHaveLength(taken.length);
    expect(sim.stats()).toMatchObject({ quotaRefused: refused.length, served429: refused.length });
    // No quota any more: everything goes through.
    sim.setFaults({ rateLimit: 0 });
    const again = await Promise.all(rows.map((r) => send(ADD, [r])));
    expect(again.every((a) => a.http === 200)).toBe(true);
    expect(sim.stats().quotaRefused).toBe(refused.length);
    expect(
      (await fetch(`${sim.url}/__sim/faults`, { method: 'POST', body: '{"rateLimit": -1}' })).status,
    ).toBe(400);
  });

  it('timeoutRate never answers and does not apply; with timeoutApplies it applies first', async () => {
    sim.setFaults({ timeoutRate: 1 });
    const hang = (body: unknown) =>
      fetch(`${sim.url}${PATH}`, {
        method: 'POST',
        headers: { 'x-token': TOKEN },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(300),
      });
    await expect(hang(one)).rejects.toThrow();
    expect(sim.groupsOf('thirdId', 'f1')).toBeUndefined();
    sim.setFaults({ timeoutApplies: true });
    await expect(hang(one)).rejects.toThrow();
    expect(sim.groupsOf('thirdId', 'f1')).toEqual(['g']);
    expect(sim.stats().timeouts).toBe(2);
  });

  it('asyncStatus answers status 0 and applies later', async () => {
    sim.setFaults({ asyncStatus: true, asyncDelayMs: 50 });
    const a = await call(one);
    expect(a.body.data).toMatchObject({ status: 0 });
    expect(sim.groupsOf('thirdId', 'f1')).toBeUndefined();
    await eventually(() => expect(sim.groupsOf('thirdId', 'f1')).toEqual(['g']), 10_000, 10);
  });

  it('holdAnswers holds requests, unapplied and unanswered, until it is cleared', async () => {
    sim.setFaults({ holdAnswers: true });
    let answered = false;
    const a = call(one).finally(() => (answered = true));
    await eventually(() => expect(sim.stats().requests).toBe(1), 10_000, 10);
    // Held: a second request while the first waits is held too, and nothing is applied.
    const b = call({ publicParams: ADD, data: [{ thirdId: 'f2', groups: 'h' }] });
    await eventually(() => expect(sim.stats().requests).toBe(2), 10_000, 10);
    expect(answered).toBe(false);
    expect(sim.groupsOf('thirdId', 'f1')).toBeUndefined();
    expect(sim.stats().byOptType.add.requests).toBe(0);
    sim.setFaults({ latencyMs: 0 }); // other faults leave the hold as it is
    expect(answered).toBe(false);
    sim.setFaults({ holdAnswers: false });
    expect((await a).http).toBe(200);
    expect((await b).http).toBe(200);
    expect(sim.groupsOf('thirdId', 'f1')).toEqual(['g']);
    expect(sim.groupsOf('thirdId', 'f2')).toEqual(['h']);
    // Not held any more: answered at once.
    expect((await call(one)).http).toBe(200);
  });

  it('reset and close let held requests go', async () => {
    sim.setFaults({ holdAnswers: true });
    const a = call(one);
    await eventually(() => expect(sim.stats().requests).toBe(1), 10_000, 10);
    sim.reset();
    expect((await a).http).toBe(200);
    const other = await startSimulator({ token: TOKEN });
    other.setFaults({ holdAnswers: true });
    const held = fetch(`${other.url}${PATH}`, {
      method: 'POST',
      headers: { 'x-token': TOKEN },
      body: JSON.stringify(one),
    }).then(
      (r) => r.status,
      () => 'closed',
    );
    await eventually(() => expect(other.stats().requests).toBe(1), 10_000, 10);
    await other.close();
    expect([200, 'closed']).toContain(await held);
  });

  it('faults and reset work over HTTP; bad faults are refused', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${sim.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    expect((await post('/__sim/faults', { errorRate: 1 })).status).toBe(200);
    expect((await call(one)).http).toBe(500);
    expect((await post('/__sim/faults', { errorRate: 2 })).status).toBe(400);
    expect((await post('/__sim/faults', { bogus: 1 })).status).toBe(400);
    expect((await post('/__sim/faults', { latencyMs: 'slow' })).status).toBe(400);
    expect((await post('/__sim/reset', {})).status).toBe(200);
    expect((await call(one)).http).toBe(200);
    expect(sim.stats().requests).toBe(1);
  });
});

describe('registry file and mock-api', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('sim-registry');
  });

  it('loads a registry file and serves it through mock-api', async () => {
    const file = join(dir, 'registry.json');
    await writeFile(file, JSON.stringify([{ thirdId: 'r1', phone: 13900000000 }, { openid: 'ro' }]));
    expect(await loadRegistry(file)).toEqual([{ thirdId: 'r1', phone: '13900000000' }, { openid: 'ro' }]);
    const mock = await startMockApi({ listen: '127.0.0.1:0', token: 'cli-token', registry: file });
    try {
      const res = await fetch(`${mock.url}${OPEN_PATH}`, {
        method: 'POST',
        headers: { 'x-token': 'cli-token' },
        body: JSON.stringify({
          publicParams: { isMatching: true, matchingType: 2, identifyWay: 2, optType: 'add' },
          data: [{ phone: '13900000000', groups: 'g' }],
        }),
      });
      expect(((await res.json()) as Answer['body']).data).toMatchObject({ status: 1 });
      expect(mock.groupsOf('thirdId', 'r1')).toEqual(['g']);
    } finally {
      await mock.close();
    }
    await writeFile(file, '{"not": "an array"}');
    await expect(loadRegistry(file)).rejects.toThrow('JSON array');
  });

  it('mock-api --rate-limit starts with a sustained quota', async () => {
    const mock = await startMockApi({ listen: '127.0.0.1:0', token: 'cli-token', rateLimit: '1' });
    try {
      const answers = await Promise.all(
        [1, 2, 3].map((i) =>
          fetch(`${mock.url}${PATH}`, {
            method: 'POST',
            headers: { 'x-token': 'cli-token' },
            body: JSON.stringify({ publicParams: ADD, data: [{ thirdId: `m${i}` }] }),
          }),
        ),
      );
      expect(answers.filter((a) => a.status === 429).length).toBeGreaterThanOrEqual(1);
      expect(mock.stats().quotaRefused).toBe(answers.filter((a) => a.status === 429).length);
    } finally {
      await mock.close();
    }
    await expect(startMockApi({ listen: ':0', token: 't', rateLimit: 'fast' })).rejects.toThrow(
      '--rate-limit',
    );
  });

  it('parses --listen and refuses incomplete credentials', async () => {
    expect(parseListen('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseListen('[::1]:9')).toEqual({ host: '::1', port: 9 });
    expect(parseListen(':7')).toEqual({ host: '127.0.0.1', port: 7 });
    expect(() => parseListen('localhost')).toThrow('HOST:PORT');
    await expect(startMockApi({ listen: ':0', appId: 'a' })).rejects.toThrow('--app-secret');
    await expect(startMockApi({ listen: ':0' })).rejects.toThrow('--token');
  });
});
