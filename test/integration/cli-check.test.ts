import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { freePort, startPostgres } from '../../src/throwaway/postgres.js';
import { runCli, STACK_FRAME, writeConfigFile } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { testConfigYaml as baseConfigYaml } from '../helpers/pipeline.js';

/** Slot names are server-wide: each test file streams from its own. */
const SLOT = 'cli_check';

/** The test config with a platform timeout that survives a loaded CI machine. */
const testConfigYaml: typeof baseConfigYaml = (o) =>
  baseConfigYaml(o).replace('timeoutMs: 2000', 'timeoutMs: 15000');

/** The finding row of a check in `check`'s table output, and the line after it. */
function finding(stdout: string, check: string): { row: string; next: string } {
  const lines = stdout.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${check} `));
  expect(i, `finding "${check}" in:\n${stdout}`).toBeGreaterThanOrEqual(0);
  return { row: lines[i] as string, next: lines[i + 1] ?? '' };
}

describe('tuzhan-cdc check', () => {
  const fx = usePipelineFixture('cli check', { per: 'file' });

  it('passes on a healthy setup and exits 0, without printing the password', async () => {
    // The harness's URL has no password: connect as a role that has one, so there is one to leak.
    const role = `tz_check_${randomBytes(3).toString('hex')}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    await fx.db.query(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${password}'`);
    try {
      const u = new URL(fx.db.url);
      u.username = role;
      u.password = password;
      const file = writeConfigFile(
        testConfigYaml({ db: { ...fx.db, url: u.toString() }, slot: SLOT, apiUrl: fx.sim.url }),
      );
      const r = await runCli(['--config', file, 'check']);
      expect(r.stderr).toBe('');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^check\s+result\s+detail$/m);
      for (const c of ['database', 'wal_level', 'replication privilege', 'publication', 'status schema']) {
        expect(finding(r.stdout, c).row).toMatch(/\sok\s/);
      }
      // Connected as that role, so the password was in the URL check used.
      expect(finding(r.stdout, 'database').row).toContain(`as ${role}`);
      expect(finding(r.stdout, 'source profiles: replica identity').row).toMatch(/\sok\s/);
      expect(finding(r.stdout, 'platform credentials').row).toMatch(/token accepted/);
      expect(r.stdout).toMatch(/all \d+ checks passed/);
      expect(r.stdout + r.stderr).not.toContain(password);

      const json = await runCli(['--config', file, 'check', '--json']);
      expect(json.code, json.stdout + json.stderr).toBe(0);
      const report = JSON.parse(json.stdout) as { ok: boolean; findings: Array<{ ok: boolean }> };
      expect(report.ok).toBe(true);
      expect(report.findings.every((f) => f.ok)).toBe(true);
      expect(json.stdout + json.stderr).not.toContain(password);
    } finally {
      await fx.db.query(`DROP ROLE ${role}`);
    }
  });

  it('warns about group names two sources both use (a customer loses them when either removes them)', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url }));
    const quiet = await runCli(['--config', file, 'check']);
    expect(finding(quiet.stdout, 'group names').row).toMatch(
      /ok\s+no group name is used by two sources \(in the first 10,000 rows of each table\)/,
    );
    await fx.db.query(`
      INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('w1', 'vip, gold'), ('w2', 'east');
      INSERT INTO crm.member_group (member_id, group_name) VALUES ('w1', 'gold'), ('w3', 'east'), ('w3', 'north');`);
    try {
      const r = await runCli(['--config', file, 'check']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const f = finding(r.stdout, 'sources profiles and memberships: group names');
      expect(f.row).toMatch(
        /warn\s+both use "east", "gold": a customer both put such a group on loses it when either removes it$/,
      );
      expect(f.next).toContain('fix: give each group name one source');
    } finally {
      await fx.db.query(
        `DELETE FROM crm.customer_profile WHERE cust_no LIKE 'w%'; DELETE FROM crm.member_group WHERE member_id LIKE 'w%'`,
      );
    }
  });

  it('reports a membership source without REPLICA IDENTITY FULL with the ALTER TABLE to run, exit 3', async () => {
    await fx.db.query(`CREATE TABLE crm."Loyalty" (cust_no text PRIMARY KEY, mobile text, tiers text)`);
    const config = (mode: string) =>
      writeConfigFile(
        testConfigYaml({
          db: fx.db,
          slot: SLOT,
          apiUrl: fx.sim.url,
          sources: `
  - name: loyalty
    table: crm."Loyalty"
    mode: ${mode}
    columns: { thirdId: cust_no, phone: mobile, groups: tiers }
    match: { isMatching: false }
`,
        }),
      );
    const r = await runCli(['--config', config('membership'), 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const f = finding(r.stdout, 'source loyalty: replica identity');
    expect(f.row).toMatch(/FAIL\s+deletes and identity changes of "crm"\."Loyalty" cannot be translated/);
    expect(f.next).toContain('fix: run: ALTER TABLE "crm"."Loyalty" REPLICA IDENTITY FULL;');
    expect(r.stderr.trim()).toMatch(/^tuzhan-cdc: 1 of \d+ checks failed$/);
    // A row-mode source reads what it last recorded as sent instead, and says so.
    const row = await runCli(['--config', config('row'), 'check']);
    expect(finding(row.stdout, 'source loyalty: replica identity').row).toMatch(
      /ok\s+deletes and group changes take the groups to remove from what sync_status recorded as sent/,
    );
  });

  it('a misspelled column gets a "did you mean", and no replica identity finding with a useless fix', async () => {
    const sources = `
  - name: typo
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, phone: mobil, groups: "Group names" }
    match: { isMatching: false }
`;
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url, sources }));
    const r = await runCli(['--config', file, 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(finding(r.stdout, 'source typo: columns').row).toMatch(
      /FAIL\s+"crm"\."customer_profile" has no column "mobil", "Group names" \(did you mean "mobile" for "mobil", "Group Names" for "Group names"\?\)/,
    );
    expect(r.stdout).not.toMatch(/^source typo: replica identity/m);
  });

  it('reports a role without REPLICATION (and without ownership of the tables), exit 3', async () => {
    const role = `tz_norepl_${randomBytes(3).toString('hex')}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    await fx.db.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    await fx.db.query(
      `GRANT USAGE ON SCHEMA crm TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA crm TO ${role};`,
    );
    try {
      const u = new URL(fx.db.url);
      u.username = role;
      u.password = password;
      const file = writeConfigFile(
        testConfigYaml({ db: { ...fx.db, url: u.toString() }, slot: SLOT, apiUrl: fx.sim.url }),
      );
      const r = await runCli(['--config', file, 'check']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      const f = finding(r.stdout, 'replication privilege');
      expect(f.row).toMatch(/FAIL\s+the role lacks the REPLICATION attribute/);
      expect(f.next).toContain(`fix: ALTER ROLE "${role}" WITH REPLICATION;`);
      const pub = finding(r.stdout, 'publication tables');
      expect(pub.row).toMatch(/FAIL\s+the role does not own/);
      // The tables' owner is the superuser: granting that role would make the bridge a superuser.
      // What the DBA runs instead is the publication route.
      expect(pub.next.trim()).toBe(
        `fix: as a superuser (or the tables' owner): CREATE PUBLICATION "${SLOT}" FOR TABLE "crm"."customer_profile", "crm"."member_group"; ALTER PUBLICATION "${SLOT}" OWNER TO "${role}";`,
      );
      expect(r.stdout).not.toMatch(/GRANT "?postgres"? TO/);
      expect(finding(r.stdout, 'source profiles: SELECT privilege').row).toMatch(/\sok\s/);
      expect(r.stdout + r.stderr).not.toContain(password);
    } finally {
      await fx.db.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it('reports an unreachable platform naming tuzhan.baseUrl, exit 3', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const file = writeConfigFile(testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: closed }));
    const r = await runCli(['--config', file, 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const f = finding(r.stdout, 'platform reachable');
    expect(f.row).toMatch(/FAIL\s+http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    expect(f.next).toContain('fix: check tuzhan.baseUrl (or TUZHAN_BASE_URL)');
    expect(finding(r.stdout, 'wal_level').row).toMatch(/\sok\s/);
  });

  it('reports wal_level=replica with the setting to change, exit 3', async () => {
    const replica = await startPostgres({
      settings: { wal_level: 'replica' },
      prefer: ['local', 'embedded'],
    });
    try {
      const admin = { ...fx.db, url: replica.url };
      const file = writeConfigFile(testConfigYaml({ db: admin, slot: SLOT, apiUrl: fx.sim.url }));
      const r = await runCli(['--config', file, 'check']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      const f = finding(r.stdout, 'wal_level');
      expect(f.row).toMatch(/FAIL\s+wal_level is replica/);
      expect(f.next).toContain('fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL');
    } finally {
      await replica.stop();
    }
  });

  it('reports an unreachable database with its fix and without the password, exit 3', async () => {
    const u = new URL(fx.db.url);
    u.port = String(await freePort());
    u.password = 'not-to-be-printed';
    const file = writeConfigFile(
      testConfigYaml({ db: { ...fx.db, url: u.toString() }, slot: SLOT, apiUrl: fx.sim.url }),
    );
    const r = await runCli(['--config', file, 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const f = finding(r.stdout, 'database');
    expect(f.row).toMatch(/FAIL\s+cannot connect to postgres\.url/);
    expect(f.next).toContain('fix: check postgres.url (or DATABASE_URL)');
    expect(r.stdout + r.stderr).not.toContain('not-to-be-printed');
  });

  it('reports a slot of the same name in another database, exit 3', async () => {
    const other = await createTestDatabase('cli check other');
    try {
      const slot = `${SLOT}_taken`;
      await other.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      const file = writeConfigFile(testConfigYaml({ db: fx.db, slot, apiUrl: fx.sim.url }));
      const r = await runCli(['--config', file, 'check']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      const f = finding(r.stdout, 'replication slot');
      expect(f.row).toMatch(
        new RegExp(`FAIL\\s+slot ${slot} belongs to database ${other.name}, not ${fx.db.name}`),
      );
      expect(f.next).toContain('fix: choose another postgres.slot');
    } finally {
      await other.drop();
    }
  });

  it('a bad config prints one line per problem naming the key path, exits 2, no stack trace', async () => {
    const yaml = testConfigYaml({ db: fx.db, slot: SLOT, apiUrl: fx.sim.url })
      .replace(`url: ${fx.db.url}`, 'url: ${DATABASE_URL}')
      .replace('debounceMs:', 'debounceMS:');
    const file = writeConfigFile(yaml);
    const r = await runCli(['--config', file, 'check'], { DATABASE_URL: undefined });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.every((l) => l.startsWith('tuzhan-cdc: invalid config: '))).toBe(true);
    expect(r.stderr).toMatch(/^tuzhan-cdc: invalid config: batching\.debounceMS: unknown key.*debounceMs/m);
    expect(r.stderr).toMatch(
      /^tuzhan-cdc: invalid config: postgres\.url: environment variable DATABASE_URL is not set$/m,
    );
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });
});
