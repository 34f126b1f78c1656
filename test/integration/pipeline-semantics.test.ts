import { describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { parseLsn } from '../../src/util/lsn.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { commitReturningLsn, confirmedPast, pastAckInterval, unanswered } from '../helpers/moments.js';
import {
  eventually,
  statusRows,
  startTestBridge,
  waitForCatchUp,
  type TestConfigOptions,
} from '../helpers/pipeline.js';

describe('pipeline semantics', () => {
  const fx = usePipelineFixture('semantics', {
    simulator: { registry: [{ thirdId: 'known-1' }, { thirdId: 'known-2', phone: '13900000002' }] },
  });

  async function startBridge(o: Partial<TestConfigOptions> & { logger?: Logger } = {}): Promise<void> {
    fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url, ...o });
  }

  it('keeps the groups of an update whose large groups value was unchanged (TOAST)', async () => {
    // REPLICA IDENTITY DEFAULT: the update carries no old tuple, and the unchanged TOASTed groups
    // value is not sent at all. The bridge must read it, never send the groups as empty.
    await fx.db.query(`ALTER TABLE crm.customer_profile REPLICA IDENTITY DEFAULT`);
    // Out of line and uncompressed: an UPDATE that leaves it alone logs it as "unchanged toast".
    await fx.db.query(`ALTER TABLE crm.customer_profile ALTER COLUMN "Group Names" SET STORAGE EXTERNAL`);
    const groups = Array.from({ length: 400 }, (_, i) => `g${i}-${Math.random().toString(36).slice(2, 12)}`);
    await startBridge({
      sources: `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, phone: mobile, groups: "Group Names" }
    deleteLookup: state
    match: { isMatching: false }`,
    });
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', $1)`, [
      groups.join(','),
    ]);
    await waitForCatchUp(fx.db);
    const added = (await statusRows(fx.db, 'profiles')).get('{"cust_no":"t1"}');
    expect(added).toMatchObject({ op: 'add', status: 'synced' });
    // An unmapped column: the groups read back equal what was last stored, so nothing is sent.
    const requests = fx.sim.stats().requests;
    await fx.db.query(`UPDATE crm.customer_profile SET note = 'touched' WHERE cust_no = 't1'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.stats().requests).toBe(requests);
    expect((await statusRows(fx.db, 'profiles')).get('{"cust_no":"t1"}')).toEqual(added);
    // A mapped column (a new identity): the add carries the groups the WAL left out.
    const adds = fx.sim.stats().byOptType.add;
    await fx.db.query(`UPDATE crm.customer_profile SET mobile = '13800000009' WHERE cust_no = 't1'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.stats().byOptType.add.requests).toBe(adds.requests + 1);
    expect(fx.sim.stats().byOptType.update.requests).toBe(0);
    expect(fx.sim.groupsOf('thirdId', 't1')).toEqual([...groups].sort());
    const row = (await statusRows(fx.db, 'profiles')).get('{"cust_no":"t1"}');
    expect(row).toMatchObject({ op: 'add', status: 'synced' });
  });

  it('moves the groups from an old identity to the new one, and deletes by stored state', async () => {
    await fx.db.query(`ALTER TABLE crm.customer_profile REPLICA IDENTITY DEFAULT`);
    await startBridge({
      sources: `
  - name: profiles
    table: crm.customer_profile
    mode: row
    key: [cust_no]
    columns: { thirdId: cust_no, phone: mobile, groups: "Group Names" }
    deleteLookup: state
    match: { isMatching: false }`,
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ('p1', '13800000001', 'a,b')`,
    );
    await waitForCatchUp(fx.db);
    // The simulator keys a customer without matching by its first identity: thirdId. Change the
    // customer number (the key) and the phone: the old identity must end up empty.
    await fx.db.query(
      `UPDATE crm.customer_profile SET cust_no = 'p2', mobile = '13800000002' WHERE cust_no = 'p1'`,
    );
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p1')).toEqual([]);
    expect(fx.sim.groupsOf('thirdId', 'p2')).toEqual(['a', 'b']);
    // A delete carries only the key (REPLICA IDENTITY DEFAULT): deleteLookup: state supplies the rest.
    await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no = 'p2'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'p2')).toEqual([]);
    const rows = await statusRows(fx.db, 'profiles');
    expect(rows.get('{"cust_no":"p1"}')).toMatchObject({ op: 'delete', status: 'synced' });
    expect(rows.get('{"cust_no":"p2"}')).toMatchObject({ op: 'delete', status: 'synced' });
  });

  it('sends delete for the old phone and add for the new when an identity column changes', async () => {
    await startBridge({
      sources: `
  - name: phones
    table: crm.customer_profile
    mode: row
    columns: { phone: mobile, groups: "Group Names" }
    match: { isMatching: false }`,
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ('x', '13700000001', 'vip')`,
    );
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('phone', '13700000001')).toEqual(['vip']);
    await fx.db.query(`UPDATE crm.customer_profile SET mobile = '13700000002' WHERE cust_no = 'x'`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('phone', '13700000001')).toEqual([]);
    expect(fx.sim.groupsOf('phone', '13700000002')).toEqual(['vip']);
  });

  it('records rows the platform reports in errorData as failed, the rest synced; unmappable rows fail locally', async () => {
    await startBridge({
      sources: `
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: true, matchingType: 2, identifyWay: 2 }
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: wx_unionid, phone: mobile, groups: "Group Names" }
    match: { isMatching: false }`,
    });
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('known-1', 'gold'), ('stranger', 'gold'), ('known-2', 'silver')`,
    );
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('nobody', 'x')`);
    await waitForCatchUp(fx.db);
    const rows = [...(await statusRows(fx.db, 'memberships')).values()];
    expect(rows.map((r) => r.status).sort()).toEqual(['failed', 'synced', 'synced']);
    const failed = rows.find((r) => r.status === 'failed');
    expect(failed?.error).toBeTruthy();
    expect(failed?.payload).toMatchObject({ thirdId: 'stranger' });
    expect(fx.sim.groupsOf('thirdId', 'known-1')).toEqual(['gold']);
    expect(fx.sim.groupsOf('phone', '13900000002')).toEqual(['silver']);
    const local = (await statusRows(fx.db, 'profiles')).get('{"cust_no":"nobody"}');
    expect(local).toMatchObject({ status: 'failed', attempts: 0 });
    expect(local?.error).toMatch(/no identity value/);
    const failures = await fx.db.query(`SELECT source FROM "Tuzhan Sync".sync_failures`);
    expect(failures.rowCount).toBe(2);
  });

  it('fails a group name with a comma (never split in two); trims spaces around names and identities', async () => {
    await startBridge();
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) VALUES ('cm1', 'with,comma'), ('cm1', '  spaced  '), ('  cm2 ', 'ok')`,
    );
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('cp1', ' VIP , Gold ')`,
    );
    await waitForCatchUp(fx.db);
    const rows = [...(await statusRows(fx.db, 'memberships')).values()];
    const comma = rows.find((r) => r.status === 'failed');
    expect(comma?.error).toMatch(/group name "with,comma" contains a comma/);
    expect(rows.filter((r) => r.status === 'synced')).toHaveLength(2);
    expect(fx.sim.groupsOf('thirdId', 'cm1')).toEqual(['spaced']);
    expect(fx.sim.groupsOf('thirdId', 'cm2')).toEqual(['ok']);
    expect(fx.sim.groupsOf('thirdId', 'cp1')).toEqual(['Gold', 'VIP']);
  });

  it('on TRUNCATE with onTruncate: delete-all, deletes every synced key and records the truncate', async () => {
    await startBridge({
      sources: `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    onTruncate: delete-all
    match: { isMatching: false }`,
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'a'), ('t2', 'b')`,
    );
    await waitForCatchUp(fx.db);
    await fx.db.query(`TRUNCATE crm.customer_profile`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 't1')).toEqual([]);
    expect(fx.sim.groupsOf('thirdId', 't2')).toEqual([]);
    const batches = await fx.db.query<{ opt_type: string; msg: string }>(
      `SELECT opt_type, msg FROM "Tuzhan Sync".sync_batch WHERE opt_type = 'truncate'`,
    );
    expect(batches.rows[0]?.msg).toMatch(/TRUNCATE/);
  });

  it('goes on when an unmapped column is added or dropped, and stops with a clear error when a mapped one is dropped', async () => {
    await startBridge();
    await fx.db.query(`ALTER TABLE crm.customer_profile ADD COLUMN extra int`);
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names", extra) VALUES ('s1', 'a', 1)`,
    );
    await fx.db.query(`ALTER TABLE crm.customer_profile DROP COLUMN note`);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s2', 'b')`);
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 's2')).toEqual(['b']);
    await fx.db.query(`ALTER TABLE crm.customer_profile DROP COLUMN wx_openid`);
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('s3', 'c')`);
    await expect(fx.running?.bridge.done).rejects.toThrow(
      /column "wx_openid" of crm.customer_profile is gone/,
    );
    expect(fx.sim.groupsOf('thirdId', 's3')).toBeUndefined();
  });

  it('applies the where filter: rows entering it are added, rows leaving it deleted', async () => {
    await startBridge({
      sources: `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    where: { note: [active, vip] }
    match: { isMatching: false }`,
    });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names", note) VALUES ('f1', 'a', 'active'), ('f2', 'b', 'inactive')`,
    );
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'f1')).toEqual(['a']);
    expect(fx.sim.groupsOf('thirdId', 'f2')).toBeUndefined();
    expect((await statusRows(fx.db, 'profiles')).has('{"cust_no":"f2"}')).toBe(false);
    await fx.db.query(
      `UPDATE crm.customer_profile SET note = CASE cust_no WHEN 'f1' THEN 'inactive' ELSE 'vip' END`,
    );
    await waitForCatchUp(fx.db);
    expect(fx.sim.groupsOf('thirdId', 'f1')).toEqual([]);
    expect(fx.sim.groupsOf('thirdId', 'f2')).toEqual(['b']);
    const rows = await statusRows(fx.db, 'profiles');
    expect(rows.get('{"cust_no":"f1"}')).toMatchObject({ op: 'delete', status: 'synced' });
    expect(rows.get('{"cust_no":"f2"}')).toMatchObject({ op: 'add', status: 'synced' });
  });

  it('stops within its timeout while the platform is down, leaving the change unconfirmed', async () => {
    const log = captureLogger('warn');
    await startBridge({ logger: log.logger });
    await waitForCatchUp(fx.db);
    fx.sim.setFaults({ errorRate: 1 });
    // Not "the confirmed position did not move": while nothing is pending the bridge confirms
    // keepalive positions, which other databases' WAL moves on (the tests share one server).
    const lsn = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('down', 'x')`,
    ]);
    await eventually(() => expect(fx.sim.stats().served500).toBeGreaterThanOrEqual(2));
    const started = Date.now();
    await fx.running?.stop(500);
    fx.running = undefined;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);
    const status = (await statusRows(fx.db, 'profiles')).get('{"cust_no":"down"}');
    expect(status).toMatchObject({ status: 'retrying' });
    expect(log.lines().map((l) => l.msg)).toContain('stopping without a full drain: timed out');
    fx.sim.setFaults({ errorRate: 0 });
  });

  it('says nothing of a timeout when a stop drains in time', async () => {
    const log = captureLogger('warn');
    await startBridge({ logger: log.logger, batching: { maxBatchSize: 2 } });
    let load = { buffered: 0, inflight: 0 };
    fx.running?.bridge.events.on('buffer', (b) => (load = b));
    // The platform holds the requests unanswered, so that the stop comes while they are in flight.
    fx.sim.setFaults({ holdAnswers: true });
    const lsn = await commitReturningLsn(fx.db, [
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'fine' || i, 'x' FROM generate_series(1, 6) i`,
    ]);
    // All three requests (two rows each) in flight: a bridge that released a change once its
    // request had left would have released the whole transaction by now.
    await eventually(() => expect(unanswered(fx.sim.stats())).toBe(3), 10_000, 5);
    // The moment: rows in flight, none of their outcomes stored, the commit not confirmed: not by
    // the bridge's tracker (the position its acknowledgement timer sends 20 ms after it moves) and,
    // once that timer would have fired, not by the slot either.
    expect(load.inflight).toBeGreaterThan(0);
    expect([...(await statusRows(fx.db, 'profiles')).values()]).toEqual([]);
    expect(fx.running?.bridge.confirmedLsn).toBeLessThanOrEqual(parseLsn(lsn));
    await pastAckInterval();
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(false);

    // stop() has paused the stream and begun to drain when it returns its promise: the answers
    // then reach a stopping bridge.
    const stopped = fx.running?.stop(5000);
    fx.sim.setFaults({ holdAnswers: false });
    await stopped;
    fx.running = undefined;
    // Drained: every outcome stored, the commit confirmed, and nothing said of a timeout.
    const rows = await statusRows(fx.db, 'profiles');
    expect([...rows.values()].map((r) => `${r.op}/${r.status}`)).toEqual(Array(6).fill('add/synced'));
    expect(fx.sim.stats().byOptType.add.rows).toBe(6);
    expect(await confirmedPast(fx.db, fx.db.name, lsn)).toBe(true);
    expect(log.lines()).toEqual([]);
  });

  it('refuses to start when deletes could not be translated, naming the ALTER TABLE to run', async () => {
    // A membership row is one pair: its delete must say which (a row-mode source reads what it
    // last recorded as sent instead).
    await fx.db.query(`ALTER TABLE crm.member_group REPLICA IDENTITY DEFAULT`);
    await expect(startBridge()).rejects.toThrow(/ALTER TABLE "crm"."member_group" REPLICA IDENTITY FULL;/);
  });

  it('keeps memory bounded: a transaction larger than maxBufferedRows streams through', async () => {
    await startBridge({ batching: { maxBufferedRows: 300, maxBatchSize: 100 } });
    let peak = 0;
    fx.running?.bridge.events.on('buffer', ({ buffered, inflight }) => {
      peak = Math.max(peak, buffered + inflight);
    });
    await fx.db.query(
      `INSERT INTO crm.member_group (member_id, group_name) SELECT 'bulk-' || i, 'g' FROM generate_series(1, 5000) i`,
    );
    await waitForCatchUp(fx.db, fx.db.name, 60_000);
    const { rows } = await fx.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM "Tuzhan Sync".sync_status WHERE source = 'memberships' AND status = 'synced'`,
    );
    expect(Number(rows[0]?.n)).toBe(5000);
    expect(fx.sim.stats().byOptType.add.rows).toBe(5000);
    await eventually(() => expect(fx.sim.groupsOf('thirdId', 'bulk-4999')).toEqual(['g']));
    // The stream stopped reading while 300 rows were buffered or in flight, and went on after.
    expect(peak).toBe(300);
  });
});
