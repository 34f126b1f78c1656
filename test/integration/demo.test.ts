import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startCli, type CliResult } from '../helpers/cli.js';

/**
 * Runs `tuzhan-cdc demo` from source, as `npm run demo` would (stdout is a pipe: periodic lines).
 * If the test fails first, the helpers stop the demo with SIGTERM, which removes what it started.
 */
async function demo(...args: string[]): Promise<CliResult> {
  const running = startCli(['demo', ...args]);
  const timer = setTimeout(() => running.child.kill('SIGINT'), 75_000);
  try {
    return await running.exited;
  } finally {
    clearTimeout(timer);
  }
}

const count = (text: string, re: RegExp): number => Number((re.exec(text)?.[1] ?? 'NaN').replace(/,/g, ''));

describe('tuzhan-cdc demo', () => {
  it('streams a sample CRM to the simulator, reports outcomes, checks the platform and cleans up', async () => {
    const r = await demo('--duration', '5', '--rate', '30', '--customers', '1000');
    const context = `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    expect(r.code, context).toBe(0);

    // Progress and totals: rows synced, rows failed (unknown members, customers without identity).
    const totals = /^totals \|.*$/m.exec(r.stdout)?.[0] ?? '';
    expect(count(totals, /synced ([\d,]+)/), context).toBeGreaterThan(1000);
    expect(count(totals, /failed ([\d,]+)/), context).toBeGreaterThan(0);
    expect(count(r.stdout, /rows changed: ([\d,]+)/)).toBeGreaterThan(0);
    expect(count(r.stdout, /(\d+) answered HTTP 429/)).toBeGreaterThan(0);
    // The 429 moment: the quota of 4 a second was imposed, and the bridge says what it learned of it.
    expect(r.stdout, context).toMatch(/simulator: from now on a quota of 4 batchAdd requests a second/);
    const learned = /it learned a quota of about ([\d.]+)\/s and sends at most ([\d.]+)\/s/.exec(r.stdout);
    expect(learned, context).not.toBeNull();
    expect(Number(learned?.[2])).toBeLessThanOrEqual(Number(learned?.[1]));

    // The removal guard, once: the mass delete held, part restored, the rest approved.
    expect(r.stdout, context).toMatch(
      /held, nothing sent: (at least )?\d+ of the \d+ rows of source profiles/,
    );
    expect(r.stdout, context).toMatch(
      /approved [\d,]+ held rows.* was restored and keeps [^;]+; \d+ is still gone and now has none$/m,
    );
    expect(r.stdout).not.toMatch(/was restored and keeps none/);

    // The status views, as tables.
    expect(r.stdout).toMatch(/^ memberships \| failed +\| [\d,]+$/m);
    expect(r.stdout).toMatch(/^ profiles +\| synced +\| [\d,]+$/m);
    expect(r.stdout).toContain('no customer matches the row');
    expect(r.stdout).toMatch(/no identity value/);

    const match = /platform matches database for (\d+)\/(\d+) sampled customers/.exec(r.stdout);
    expect(match, context).not.toBeNull();
    expect(Number(match?.[2])).toBeGreaterThan(0);
    expect(match?.[1]).toBe(match?.[2]);

    // Everything it started is gone: its temp directory (bridge config and log) was removed.
    const dir = /config (\/\S+)\/bridge\.yaml/.exec(r.stdout)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir as string)).toBe(false);
    expect(r.stderr).toBe('');
  }, 90_000);

  it('killed with SIGKILL, leaves no PostgreSQL running and no directory behind', async () => {
    const running = startCli(['demo', '--duration', '120', '--customers', '300']);
    const deadline = Date.now() + 60_000;
    while (!/bridge streaming after/.test(running.stdout()) && Date.now() < deadline) {
      if (running.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const context = `stdout:\n${running.stdout()}\nstderr:\n${running.stderr()}`;
    expect(running.stdout(), context).toMatch(/bridge streaming after/);
    const demoDir = /config (\/\S+)\/bridge\.yaml/.exec(running.stdout())?.[1] as string;
    const url = /^ {2}url: (\S+)$/m.exec(readFileSync(`${demoDir}/bridge.yaml`, 'utf8'))?.[1] as string;
    const server = new pg.Client({ connectionString: url });
    await server.connect();
    const dataDir = (await server.query<{ d: string }>(`SELECT current_setting('data_directory') AS d`))
      .rows[0]?.d as string;
    await server.end();
    expect(existsSync(dataDir)).toBe(true);

    running.child.kill('SIGKILL');
    await running.exited;
    const refused = async (): Promise<boolean> => {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      try {
        await c.connect();
        await c.end();
        return false;
      } catch {
        return true;
      }
    };
    const until = Date.now() + 20_000;
    while (Date.now() < until && (!(await refused()) || existsSync(dirname(dataDir)) || existsSync(demoDir)))
      await new Promise((r) => setTimeout(r, 250));
    expect(await refused(), 'the demo PostgreSQL still accepts connections').toBe(true);
    expect(existsSync(dirname(dataDir)), `${dirname(dataDir)} is left`).toBe(false);
    expect(existsSync(demoDir), `${demoDir} is left`).toBe(false);
  }, 90_000);
});
