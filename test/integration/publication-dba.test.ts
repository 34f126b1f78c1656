/**
 * The least-privilege route of "What PostgreSQL must allow": the bridge's role owns no table; a
 * DBA (a superuser here) creates the publication with the source tables and gives it to the role.
 * PostgreSQL lets only a table's owner put it into a publication, so the bridge must use that
 * publication as it is: `check` passes, and `run` streams without altering it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeConfigFile } from '../helpers/cli.js';
import { type TestDatabase } from '../helpers/database.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import {
  eventually,
  startTestBridge,
  testConfigYaml,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const SLOT = 'publication_dba';

/** The finding row of a check in `check`'s table output. */
function finding(stdout: string, check: string): string {
  const row = stdout.split('\n').find((l) => l.startsWith(`${check} `));
  expect(row, `finding "${check}" in:\n${stdout}`).toBeDefined();
  return row as string;
}

describe('a publication made by a DBA for a role that owns no table', () => {
  const role = `tz_dba_${randomBytes(3).toString('hex')}`;
  const fx = usePipelineFixture('publication dba', { per: 'file', roles: [role] });
  let asRole: TestDatabase;
  let bridge: TestBridge | undefined;

  beforeAll(async () => {
    // The tables belong to the superuser; the role may stream, read them, and create its schema.
    await fx.db.query(`
      CREATE ROLE ${role} LOGIN REPLICATION;
      GRANT USAGE ON SCHEMA crm TO ${role};
      GRANT SELECT ON ALL TABLES IN SCHEMA crm TO ${role};
      GRANT CREATE ON DATABASE ${fx.db.name} TO ${role};
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

  it('check passes: the publication holds exactly the source tables', async () => {
    const file = writeConfigFile(testConfigYaml({ db: asRole, slot: SLOT, apiUrl: fx.sim.url }));
    const r = await runCli(['--config', file, 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(finding(r.stdout, 'publication tables')).toMatch(
      /\sok\s+publication publication_dba holds exactly the source tables/,
    );
    expect(finding(r.stdout, 'publication')).toMatch(/\sok\s/);
  });

  it('run streams through it without altering it', async () => {
    bridge = await startTestBridge({ db: asRole, slot: SLOT, apiUrl: fx.sim.url });
    await fx.db.query(
      `INSERT INTO crm.customer_profile (cust_no, mobile, "Group Names") VALUES ('d1', '13900000001', 'vip')`,
    );
    await waitForCatchUp(fx.db, SLOT);
    await eventually(() => expect(fx.sim.groupsOf('thirdId', 'd1')).toEqual(['vip']));
    const { rows } = await fx.db.query<{ owner: string; tables: string }>(
      `SELECT pg_get_userbyid(p.pubowner) AS owner,
              (SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables t
                WHERE t.pubname = p.pubname) AS tables
         FROM pg_publication p WHERE p.pubname = $1`,
      [SLOT],
    );
    expect(rows[0]).toEqual({ owner: role, tables: 'customer_profile,member_group' });
  });

  it('a publication holding other tables is refused with what the DBA must run', async () => {
    await bridge?.stop();
    bridge = undefined;
    await fx.db.query(`ALTER PUBLICATION ${SLOT} SET TABLE crm.customer_profile`);
    const file = writeConfigFile(testConfigYaml({ db: asRole, slot: SLOT, apiUrl: fx.sim.url }));
    const r = await runCli(['--config', file, 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(finding(r.stdout, 'publication tables')).toMatch(
      /FAIL\s+the role does not own .*which does not hold exactly the source tables/,
    );
    expect(r.stdout).toContain(
      `fix: as a superuser (or a role owning the publication and the tables): ALTER PUBLICATION "${SLOT}" SET TABLE "crm"."customer_profile", "crm"."member_group";`,
    );
    expect(r.stdout).not.toContain('GRANT "postgres"');
  });

  // The DBA's publication is not the bridge's to drop: teardown drops the slot and leaves it, and
  // says why; --force drops it too. A slot of another consumer (inactive: which publication it
  // reads cannot be seen) is named as a reason of its own.
  it('teardown leaves the publication the DBA made, and names the other slot that may read it, unless --force', async () => {
    await fx.db.query(`SELECT pg_create_logical_replication_slot('${SLOT}_other', 'pgoutput')`);
    try {
      const file = writeConfigFile(testConfigYaml({ db: asRole, slot: SLOT, apiUrl: fx.sim.url }));
      const plan = await runCli(['--config', file, 'teardown']);
      expect(plan.code).toBe(2);
      expect(plan.stdout).toContain(
        `publication ${SLOT}: left alone: the bridge did not create it (it lacks the bridge's comment: a DBA's, or made by a bridge older than that comment); slot ${SLOT}_other (inactive) may read it (PostgreSQL does not record which publication a slot reads); --force drops it`,
      );

      const r = await runCli(['--config', file, 'teardown', '--yes']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`dropped replication slot ${SLOT}`);
      expect(r.stdout).toContain(`left publication ${SLOT} alone: the bridge did not create it`);
      const left = await fx.db.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [SLOT]);
      expect(left.rowCount).toBe(1);

      const forced = await runCli(['--config', file, 'teardown', '--yes', '--force']);
      expect(forced.code, forced.stderr).toBe(0);
      expect(forced.stdout.trim()).toBe(`dropped publication ${SLOT}`);
      const gone = await fx.db.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [SLOT]);
      expect(gone.rowCount).toBe(0);
    } finally {
      await fx.db.query(`SELECT pg_drop_replication_slot('${SLOT}_other')`);
    }
  });
});
