/**
 * A bridge that cannot start (README "Command line", docs/operations.md "Restarts, and config
 * errors"): every problem found before streaming is printed with its fix, goes into the JSON log as
 * one `fatal` line, and with `--config-error-delay` the exit waits, so a restart policy does not loop;
 * a database that cannot be reached exits at once (a restart is what fixes it), and an unexpected
 * error is one line, its stack trace at debug level.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cleanup.js';
import { runCli, startCli, STACK_FRAME, writeConfigFile, type CliResult } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { DEFAULT_SOURCES, eventually, testConfigYaml } from '../helpers/pipeline.js';

/** The JSON lines of the log (stdout), parsed. */
function logLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const fatal = (stdout: string) => logLines(stdout).filter((l) => l.level === 'fatal');

describe('run: a start that fails before streaming', () => {
  const role = `tz_nopriv_${randomBytes(3).toString('hex')}`;
  const fx = usePipelineFixture('cli start failure', { per: 'file', roles: [role] });

  beforeAll(async () => {
    // A role that owns the tables and may create its schema, but not stream: one missing privilege.
    await fx.db.query(`CREATE ROLE ${role} LOGIN; GRANT USAGE ON SCHEMA crm TO ${role};
      GRANT CREATE ON DATABASE ${fx.db.name} TO ${role};
      ALTER TABLE crm.customer_profile OWNER TO ${role}; ALTER TABLE crm.member_group OWNER TO ${role}`);
  });

  it('a mapped column with a typo and a missing privilege: fixes printed and logged, then the delay; SIGTERM ends it', async () => {
    const u = new URL(fx.db.url);
    u.username = role;
    const yaml = testConfigYaml({
      db: { ...fx.db, url: u.toString() },
      apiUrl: fx.sim.url,
      sources: DEFAULT_SOURCES.replace('phone: mobile', 'phone: mobil'),
    });
    const running = startCli(['--config', writeConfigFile(yaml), 'run', '--config-error-delay', '60'], {
      LOG_LEVEL: 'info',
    });
    await eventually(() => expect(running.stderr()).toMatch(/exiting in 60 s/), 30_000);

    // The moment: both problems are reported, and the process is still waiting out the delay.
    expect(running.child.exitCode).toBeNull();
    expect(running.stderr()).toMatch(
      /^tuzhan-cdc: replication privilege: the role lacks the REPLICATION attribute — fix: ALTER ROLE <bridge role> WITH REPLICATION;$/m,
    );
    expect(running.stderr()).toMatch(
      /^tuzhan-cdc: source profiles: columns: "crm"."customer_profile" has no column "mobil" \(did you mean "mobile"\?\) — fix: correct sources\[\]\.columns/m,
    );
    const [line, ...others] = fatal(running.stdout());
    expect(others).toEqual([]);
    expect(line).toMatchObject({
      code: 'STARTUP_CHECK',
      exitCode: 1,
      exitInSeconds: 60,
      problems: [
        {
          problem: 'replication privilege: the role lacks the REPLICATION attribute',
          remedy: 'ALTER ROLE <bridge role> WITH REPLICATION;',
        },
        {
          problem: expect.stringContaining('has no column "mobil"') as unknown,
          remedy: 'correct sources[].columns / key / where, or add the column',
        },
      ],
    });
    expect(line?.msg).toMatch(/^cannot start: replication privilege: .* \(and 1 more\)$/);
    // Nothing was created: the checks come before anything else.
    const { rows } = await fx.db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'Tuzhan Sync'`);
    expect(rows).toEqual([]);

    running.child.kill('SIGTERM');
    const r = await running.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('a database that cannot be reached exits 1 at once, delay or not: a restart is what fixes it', async () => {
    const u = new URL(fx.db.url);
    u.port = '1';
    const yaml = testConfigYaml({ db: { ...fx.db, url: u.toString() }, apiUrl: fx.sim.url });
    // Exits by itself: the test's own timeout is far below the delay.
    const r: CliResult = await runCli(
      ['--config', writeConfigFile(yaml), 'run', '--config-error-delay', '600'],
      { LOG_LEVEL: 'info' },
      30_000,
    );
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^tuzhan-cdc: cannot connect to postgres\.url \(in .*bridge\.yaml\): .*ECONNREFUSED.* — fix: start the bridge again/m,
    );
    expect(r.stderr).not.toMatch(/exiting in/);
    const [line] = fatal(r.stdout);
    expect(line).toMatchObject({ code: 'DB_UNREACHABLE', exitCode: 1 });
    expect(line).not.toHaveProperty('exitInSeconds');
  });

  it('an unexpected error is one line on stderr; its stack trace goes to the log at debug level', async () => {
    // A directory where the CA certificate should be: reading it fails as a permission denied would.
    const yaml = testConfigYaml({ db: fx.db, apiUrl: fx.sim.url }).replace(
      'onSlotLost: stop',
      `onSlotLost: stop\n  ssl: { ca: ${tempDir('not-a-file')} }`,
    );
    const file = writeConfigFile(yaml);
    const r = await runCli(['--config', file, 'run'], { LOG_LEVEL: 'debug' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^tuzhan-cdc: unexpected error: postgres\.ssl\.ca: cannot read .*EISDIR.* \(--verbose or log level debug shows the stack trace\)$/,
      ),
    ]);
    const lines = logLines(r.stdout);
    const trace = lines.find(
      (l) => l.level === 'debug' && l.msg === 'the stack trace of the error that stopped the start',
    );
    expect((trace?.err as { stack?: string } | undefined)?.stack).toMatch(STACK_FRAME);
    expect(fatal(r.stdout)).toEqual([
      expect.objectContaining({
        code: 'UNEXPECTED',
        problems: [{ problem: expect.stringContaining('EISDIR') }],
      }),
    ]);

    const quiet = await runCli(['--config', file, 'run'], { LOG_LEVEL: 'info' });
    expect(quiet.stdout).not.toMatch(/stack trace|\bat readPem\b/);
  });
});
