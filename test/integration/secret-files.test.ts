/**
 * Secrets from files (Docker secrets): every variable the config reads may be given as <NAME>_FILE.
 * And a config error under a restart policy: `run --config-error-delay` waits before exiting 2.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { keyWithOrigin } from '../../src/config/origins.js';
import { tempDir } from '../helpers/cleanup.js';
import { runCli, startCli, STACK_FRAME, writeConfigFile } from '../helpers/cli.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { testConfigYaml } from '../helpers/pipeline.js';

/** Writes `value` (with the newline editors and `echo` add) to a fresh file; returns its path. */
function secret(name: string, value: string): string {
  const file = join(tempDir('secret'), name);
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return file;
}

describe('<NAME>_FILE variables', () => {
  const fx = usePipelineFixture('secret files', { per: 'file', simulator: { token: 'file-token' } });

  /** The test config with the URL and the token left to the environment. */
  const fromEnv = (): string =>
    testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, token: '${TUZHAN_TOKEN}' })
      .replace(`url: ${fx.db.url}`, 'url: ${DATABASE_URL}')
      .replace('listen: "off"', 'listen: "off"\n  token: ${OPS_TOKEN}');

  it('check runs with the database URL and the platform token read from files', async () => {
    const file = writeConfigFile(fromEnv());
    const r = await runCli(['--config', file, 'check'], {
      DATABASE_URL_FILE: secret('database-url', fx.db.url),
      TUZHAN_TOKEN_FILE: secret('tuzhan-token', 'file-token'),
      OPS_TOKEN_FILE: secret('ops-token', 'ops'),
      DATABASE_URL: undefined,
      TUZHAN_TOKEN: undefined,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^platform credentials +ok +.*token accepted/m);
  });

  it('a ${VAR} in the file, an override, and their trailing newline', () => {
    const config = loadConfig({
      text: fromEnv(),
      env: {
        DATABASE_URL_FILE: secret('url', fx.db.url),
        TUZHAN_TOKEN_FILE: secret('token', 'tok'),
        OPS_TOKEN_FILE: secret('ops', 'ops-secret'),
      },
    });
    expect(config.postgres.url).toBe(fx.db.url);
    expect(config.tuzhan.token).toBe('tok');
    expect(config.http.token).toBe('ops-secret');

    // Every key's variable has the _FILE form too.
    const keyed = loadConfig({
      text: fromEnv(),
      env: {
        DATABASE_URL: fx.db.url,
        OPS_TOKEN: 'ops',
        TUZHAN_CDC__TUZHAN__TOKEN_FILE: secret('keyed-token', 'keyed'),
      },
    });
    expect(keyed.tuzhan.token).toBe('keyed');
    expect(keyWithOrigin(keyed, 'tuzhan.token')).toBe('tuzhan.token (from TUZHAN_CDC__TUZHAN__TOKEN_FILE)');
  });

  it('the command line takes a TUZHAN_CDC__ variable for any key, and names it when its value is bad', async () => {
    const file = writeConfigFile(testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, token: 'file-token' }));
    const bad = await runCli(['--config', file, 'check'], { TUZHAN_CDC__BATCHING__MAX_WAIT_MS: 'soon' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(
      'tuzhan-cdc: invalid config: batching.maxWaitMs (from TUZHAN_CDC__BATCHING__MAX_WAIT_MS): expected a number, got a string',
    );
    // The platform's token from the key's variable: check's probe is accepted with it.
    const yaml = testConfigYaml({ db: fx.db, apiUrl: fx.sim.url, token: 'wrong-in-file' });
    const ok = await runCli(['--config', writeConfigFile(yaml), 'check'], {
      TUZHAN_CDC__TUZHAN__TOKEN: 'file-token',
    });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  });

  it('both NAME and NAME_FILE, or a file that cannot be read, are config errors naming the key', () => {
    const env = { DATABASE_URL: fx.db.url, OPS_TOKEN: 'ops' };
    expect(() =>
      loadConfig({
        text: fromEnv(),
        env: { ...env, TUZHAN_TOKEN: 't', TUZHAN_TOKEN_FILE: secret('t', 't') },
      }),
    ).toThrow('tuzhan.token: both TUZHAN_TOKEN and TUZHAN_TOKEN_FILE are set; set only one');
    expect(() =>
      loadConfig({ text: fromEnv(), env: { ...env, TUZHAN_TOKEN_FILE: '/nonexistent/tuzhan-token' } }),
    ).toThrow('tuzhan.token: TUZHAN_TOKEN_FILE: cannot read /nonexistent/tuzhan-token (ENOENT)');
    expect(() =>
      loadConfig({
        text: fromEnv(),
        env: { ...env, TUZHAN_TOKEN: 't', OPS_TOKEN: undefined, OPS_TOKEN_FILE: '/nonexistent/ops' },
      }),
    ).toThrow('http.token: OPS_TOKEN_FILE: cannot read /nonexistent/ops (ENOENT)');
  });
});

describe('run --config-error-delay', () => {
  it('prints the problems at once, waits, and exits 2 at once on SIGTERM', async () => {
    const file = writeConfigFile('postgres: {}\nsources: []\n');
    const running = startCli(['--config', file, 'run', '--config-error-delay', '60']);
    const deadline = Date.now() + 20_000;
    while (!/exiting in 60 s/.test(running.stderr()) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(running.stderr()).toMatch(/^tuzhan-cdc: invalid config: postgres\.url: /m);
    expect(running.stderr()).toMatch(/exiting in 60 s \(--config-error-delay\)/);
    // Still waiting: a restart policy would not restart it yet.
    await new Promise((r) => setTimeout(r, 1000));
    expect(running.child.exitCode).toBeNull();
    const t0 = Date.now();
    running.child.kill('SIGTERM');
    const r = await running.exited;
    expect(r.code).toBe(2);
    expect(Date.now() - t0).toBeLessThan(3000);
    // The problems were printed once, without a stack trace.
    expect(r.stderr.match(/invalid config: postgres\.url/g)).toHaveLength(1);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  }, 30_000);
});
