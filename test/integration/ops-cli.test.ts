import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs the CLI from source, as a user would, and returns what they would see. */
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, DEBUG: '' },
    timeout: 30_000,
  });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('tuzhan-cdc command line', () => {
  it('--help documents the global options and every exit code', () => {
    const r = cli('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Usage: tuzhan-cdc/);
    expect(r.stdout).toContain('--config <file>');
    expect(r.stdout).toContain('config/bridge.yaml');
    for (const line of [
      /^\s+0\s+ok$/m,
      /^\s+1\s+runtime failure/m,
      /^\s+2\s+bad config or usage/m,
      /^\s+3\s+a check failed/m,
    ])
      expect(r.stdout).toMatch(line);
  });

  it('--version prints the package version', () => {
    const r = cli('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unknown command exits 2 with one line and no stack trace', () => {
    const r = cli('--config', '/nonexistent.yaml', 'no-such-command');
    expect(r.status).toBe(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tuzhan-cdc: unknown command 'no-such-command'/);
    expect(r.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });
});
