/**
 * SPEC section 6: when the platform refuses the credentials, the bridge stops sending, logs an
 * error naming the config key, keeps retrying slowly; nothing is acknowledged, nothing is lost
 * (README "Failures"). Only the platform client had a test of this; here the whole bridge runs.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogger } from '../helpers/capture-logger.js';
import { startCli, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn, confirmedPast } from '../helpers/moments.js';
import {
  eventually,
  startTestBridge,
  statusRows,
  testConfigYaml,
  waitForCatchUp,
  waitForStreaming,
} from '../helpers/pipeline.js';

describe('credentials the platform refuses', () => {
  const fx = usePipelineFixture('claims credentials', { per: 'file', stopTimeoutMs: 500 });

  beforeAll(async () => {
    // A first start with refused credentials creates nothing (it fails fast): create the slot with
    // the right token, so the tests below are about a running bridge whose credentials are refused.
    const first = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, token: 'test-token' });
    await first.stop();
    fx.sim.reset();
  });

  it('stop the sending, name tuzhan.token once, keep the rows retrying and unconfirmed; the right token delivers them', async () => {
    const log = captureLogger('warn');
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      token: 'wrong-token',
      logger: log.logger,
    });
    const lsn = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('a1', 'x')`,
    ]);
    await eventually(() => expect(fx.sim.stats().authFailures).toBeGreaterThanOrEqual(3), 15_000, 20);

    // The moment: the platform refused every request it got, and applied nothing.
    const stats = fx.sim.stats();
    expect(stats.requests).toBe(stats.authFailures);
    expect(stats.byOptType.add.requests + stats.byOptType.update.requests).toBe(0);
    const errors = log.lines().filter((l) => l.level === 50);
    expect(errors).toEqual([
      expect.objectContaining({
        configKey: 'tuzhan.token',
        msg: 'the platform refuses the credentials: fix tuzhan.token; sending is paused and retried',
      }),
    ]);
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"a1"}')).toMatchObject({
      op: 'add',
      status: 'retrying',
    });
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);

    await fx.running.stop(500);
    fx.running = undefined;
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);

    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, token: 'test-token' });
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'a1')).toEqual(['x']);
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"a1"}')).toMatchObject({ status: 'synced' });
  });

  // A refusal pauses all sending: one request probes the credentials, later changes' requests wait
  // behind it (TuzhanClient's credentials gate), and tuzhan.token is named once, not per request.
  it('sends nothing new and logs once when more changes come after the refusal', async () => {
    const log = captureLogger('warn');
    fx.running = await startTestBridge({
      db: fx.db,
      apiUrl: fx.sim.url,
      token: 'wrong-token',
      logger: log.logger,
    });
    let load = { buffered: 0, inflight: 0 };
    fx.running.bridge.events.on('buffer', (b) => (load = b));
    const refusedBefore = fx.sim.stats().authFailures;
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('b1', 'x')`);
    await eventually(() => expect(fx.sim.stats().authFailures).toBeGreaterThan(refusedBefore), 15_000, 10);
    const refusedAt = Date.now() - 20;
    for (const k of ['b2', 'b3', 'b4'])
      await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ($1, 'x')`, [k]);
    // The later changes are in requests of their own, handed to delivery (none left in a buffer)...
    await eventually(() => expect(load).toEqual({ buffered: 0, inflight: 4 }), 15_000, 10);
    // ...and the probe has been tried again since: a request not held back would have gone first.
    const probes = fx.sim.stats().authFailures;
    await eventually(() => expect(fx.sim.stats().authFailures).toBeGreaterThan(probes), 15_000, 10);
    // One streak of retries (the client's auth backoff: 1 s doubling, at least half of it each
    // time) makes at most this many attempts in the time since the first refusal.
    const elapsed = Date.now() - refusedAt;
    let attempts = 1;
    while (500 * (2 ** attempts - 1) <= elapsed) attempts += 1;
    expect(fx.sim.stats().authFailures - refusedBefore).toBeLessThanOrEqual(attempts);
    expect(log.lines().filter((l) => l.level === 50)).toHaveLength(1);
  });

  // The token comes from the environment as the example config has it (`token: ${TUZHAN_TOKEN}`):
  // the error names the key and the variable, not the value. Nothing can be delivered while the
  // platform refuses it, so SIGTERM stops at once, not after --shutdown-timeout (here ten minutes,
  // far beyond the test's own timeout), and what the refused requests carried is sent after the
  // next start.
  it('names TUZHAN_TOKEN as the origin of tuzhan.token; SIGTERM then exits at once and loses nothing', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, token: '${TUZHAN_TOKEN}' }));
    const run = startCli(['--config', file, 'run', '--shutdown-timeout', '600000'], {
      TUZHAN_TOKEN: 'wrong-token',
      LOG_LEVEL: 'info',
    });
    await waitForStreaming(fx.db, fx.db.name);
    const refusedBefore = fx.sim.stats().authFailures;
    const lsn = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'x')`,
    ]);
    await eventually(() => expect(fx.sim.stats().authFailures).toBeGreaterThan(refusedBefore), 15_000, 20);
    await eventually(() => expect(run.stdout()).toContain('"level":"error"'), 15_000, 20);

    // The moment: the refused request waits for credentials, and the change is not confirmed.
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);
    const errors = run
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"level":"error"'))
      .map((l) => JSON.parse(l) as { msg: string });
    expect(errors.map((e) => e.msg)).toEqual([
      'the platform refuses the credentials: fix tuzhan.token (from TUZHAN_TOKEN); sending is paused and retried',
    ]);

    run.child.kill('SIGTERM');
    const r = await run.exited;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('stopping without waiting for requests: the platform refuses the credentials');
    expect(r.stdout).not.toContain('timed out');
    expect(r.stdout + r.stderr).not.toContain('wrong-token');
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);

    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, token: 'test-token' });
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 't1')).toEqual(['x']);
  });
});
