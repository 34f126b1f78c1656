/**
 * The bridge under a role with only the grants the README lists, as on a managed service where
 * nobody is a superuser: REPLICATION, USAGE on the source schema, SELECT on the sources, a status
 * schema of its own, and a publication a DBA created and handed over. First start (snapshot),
 * streaming, a backfill and `run --resync` all work; `check` passes. Then each grant `run` needs is
 * taken away in turn: `check` must name it, and a start must stop with one clear line and leave no
 * slot behind (an inactive slot pins WAL until someone notices).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeConfigFile } from '../helpers/cli.js';
import { type TestDatabase } from '../helpers/database.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  expectedGroups,
  startTestBridge,
  testConfigYaml,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const SLOT = 'least_privilege';

describe('a role with only the documented grants', () => {
  const role = `tz_least_${randomBytes(3).toString('hex')}`;
  const fx = usePipelineFixture('least privilege', { per: 'file', roles: [role] });
  let asRole: TestDatabase;
  let bridge: TestBridge | undefined;

  const platform = (): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const id of ['k1', 'k2', 'k3', 'k4', 'k5', 'k6']) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g && g.length) out[id] = [...g].sort();
    }
    return out;
  };
  const slotExists = async (slot: string): Promise<boolean> =>
    ((await fx.db.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1`, [slot])).rowCount ?? 0) >
    0;

  beforeAll(async () => {
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('k1', 'a,b'), ('k2', 'c');
       INSERT INTO crm.member_group (member_id, group_name) VALUES ('k3', 'm1');`,
    );
    // What a DBA grants on a managed service: no superuser, no CREATE on the database, no table owned.
    await fx.db.query(`
      CREATE ROLE ${role} LOGIN REPLICATION;
      GRANT USAGE ON SCHEMA crm TO ${role};
      GRANT SELECT ON crm.customer_profile, crm.member_group TO ${role};
      CREATE SCHEMA "Tuzhan Sync" AUTHORIZATION ${role};
      CREATE PUBLICATION ${SLOT} FOR TABLE crm.customer_profile, crm.member_group;
      ALTER PUBLICATION ${SLOT} OWNER TO ${role};
    `);
    const u = new URL(fx.db.url);
    u.username = role;
    asRole = { ...fx.db, url: u.toString() };
  });
  afterAll(async () => {
    await bridge?.stop();
  });

  it('check passes; first start, streaming, a backfill and run --resync work', async () => {
    const file = writeConfigFile(testConfigYaml({ db: asRole, slot: SLOT, apiUrl: fx.sim.url }));
    const check = await runCli(['--config', file, 'check']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const { rows } = await fx.db.query<{ super: boolean; createdb: boolean }>(
      `SELECT rolsuper AS super, has_database_privilege($1, current_database(), 'CREATE') AS createdb
         FROM pg_roles WHERE rolname = $1`,
      [role],
    );
    expect(rows[0]).toEqual({ super: false, createdb: false });

    // First start: the snapshot, then the stream.
    bridge = await startTestBridge({ db: asRole, slot: SLOT, apiUrl: fx.sim.url });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('k4', 'd');
       UPDATE crm.customer_profile SET "Group Names" = 'a' WHERE cust_no = 'k1';
       INSERT INTO crm.member_group (member_id, group_name) VALUES ('k5', 'm2');`,
    );
    await waitForCatchUp(fx.db, SLOT);
    expect(platform()).toEqual(await expectedGroups(fx.db));

    // A backfill, run by the daemon under the same role.
    const backfill = await runCli(['--config', file, 'backfill', '--source', 'profiles']);
    expect(backfill.code, backfill.stdout + backfill.stderr).toBe(0);
    expect(backfill.stdout).toMatch(/^backfill \d+ done: 3 rows have their outcome stored$/m);
    await bridge.stop();
    bridge = undefined;

    // run --resync: a new slot and its snapshot, also under the role; the platform drifted meanwhile.
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('k6', 'e')`);
    bridge = await startTestBridge({ db: asRole, slot: SLOT, apiUrl: fx.sim.url, resync: true });
    await waitForCatchUp(fx.db, SLOT);
    await eventually(async () => expect(platform()).toEqual(await expectedGroups(fx.db)));
    await bridge.stop();
    bridge = undefined;
  }, 90_000);

  // Each grant `run` needs, taken away: check names it with its fix, and a first start stops with
  // one line before anything pins WAL.
  const revocations = [
    {
      what: 'USAGE on the source schema',
      revoke: `REVOKE USAGE ON SCHEMA crm FROM ${role}`,
      grant: `GRANT USAGE ON SCHEMA crm TO ${role}`,
      finding: /source profiles: SELECT privilege\s+FAIL\s+.*USAGE on schema "crm"/,
      fix: `GRANT USAGE ON SCHEMA "crm" TO "${role}"`,
    },
    {
      what: 'SELECT on a source table',
      revoke: `REVOKE SELECT ON crm.member_group FROM ${role}`,
      grant: `GRANT SELECT ON crm.member_group TO ${role}`,
      finding: /source memberships: SELECT privilege\s+FAIL\s+.*cannot SELECT from "crm"."member_group"/,
      fix: `GRANT SELECT ON "crm"."member_group" TO "${role}"`,
    },
    {
      what: 'REPLICATION',
      revoke: `ALTER ROLE ${role} NOREPLICATION`,
      grant: `ALTER ROLE ${role} REPLICATION`,
      finding: /replication privilege\s+FAIL\s+the role lacks the REPLICATION attribute/,
      fix: `ALTER ROLE "${role}" WITH REPLICATION;`,
    },
  ];

  for (const r of revocations) {
    it(`without ${r.what}: check names it, and a start stops with one line and leaves no slot`, async () => {
      const slot = `least_${randomBytes(2).toString('hex')}`;
      // A fresh slot and status: a first start, the snapshot included.
      const file = writeConfigFile(testConfigYaml({ db: asRole, slot: SLOT, apiUrl: fx.sim.url }));
      await fx.db.query(r.revoke);
      try {
        const check = await runCli(['--config', file, 'check']);
        expect(check.code, check.stdout).toBe(3);
        expect(check.stdout).toMatch(r.finding);
        expect(check.stdout).toContain(r.fix);
        const yaml = testConfigYaml({ db: asRole, slot, publication: SLOT, apiUrl: fx.sim.url });
        const run = await runCli(['--config', writeConfigFile(yaml), 'run']);
        expect(run.code, run.stdout + run.stderr).not.toBe(0);
        expect(run.stderr).not.toMatch(/^\s+at /m); // one line with its fix, not a stack trace
        expect(await slotExists(slot)).toBe(false);
      } finally {
        await fx.db.query(r.grant);
      }
    }, 60_000);
  }

  it('a privilege lost during the first snapshot: the start stops and drops the slot it made', async () => {
    const slot = `least_${randomBytes(2).toString('hex')}`;
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, "Group Names") SELECT 'p' || i, 'x' FROM generate_series(1, 2000) i`,
    );
    // A slow platform and small buffers hold the snapshot in its first source for a few seconds.
    fx.sim.setFaults({ latencyMs: 300 });
    const starting = startTestBridge({
      db: asRole,
      slot,
      publication: SLOT,
      apiUrl: fx.sim.url,
      batching: { maxBatchSize: 50, maxBufferedRows: 100 },
    }).then(
      (b) => b,
      (err: unknown) => err as Error,
    );
    try {
      await eventually(
        async () => {
          const r = await fx.db.query(
            `SELECT 1 FROM "Tuzhan Sync".bridge_state WHERE slot = $1 AND snapshot_started_at IS NOT NULL`,
            [slot],
          );
          expect(r.rowCount).toBe(1);
        },
        20_000,
        20,
      );
      // The moment: the slot exists and its snapshot has not finished when the grant goes.
      expect(await slotExists(slot)).toBe(true);
      await fx.db.query(
        `DO $$ BEGIN
           IF (SELECT snapshot_done_at FROM "Tuzhan Sync".bridge_state WHERE slot = '${slot}') IS NOT NULL THEN
             RAISE EXCEPTION 'the snapshot finished before the revoke';
           END IF;
           REVOKE SELECT ON crm.member_group FROM ${role};
         END $$`,
      );
      const result = await starting;
      if (!(result instanceof Error)) {
        bridge = result;
        throw new Error('the start went on without SELECT on a source');
      }
      expect(result.message).toMatch(/permission denied for (table|relation) member_group/);
      expect(await slotExists(slot)).toBe(false);
    } finally {
      fx.sim.setFaults({ latencyMs: 0 });
      await fx.db.query(`GRANT SELECT ON crm.member_group TO ${role}`);
      await fx.db.query(`DELETE FROM crm.customer_profile WHERE cust_no LIKE 'p%'`);
    }
  }, 60_000);
});
