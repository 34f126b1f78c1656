/**
 * What every scenario shares: one database per scenario on the throwaway server, the bridge as a
 * child process (`node --import tsx src/cli/main.ts run`) so its RSS and CPU are its own and the
 * harness's work (writers, the simulator, polling) stays out of its numbers, and the waits a user
 * would watch (the slot's confirmed position, bridge_state).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import type { ApiRow, OptType } from '../src/tuzhan/types.js';
import { quoteIdent } from '../src/util/sql.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const TMP = join(ROOT, '.tmp', 'bench');
export const TOKEN = 'bench-token';
export const STATUS_SCHEMA = 'tuzhan_sync';

/** What the simulator saw: a validated request's rows and when its body had been read. */
export type RowsHook = (optType: OptType, rows: readonly ApiRow[], receivedAtMs: number) => void;

export interface BenchContext {
  /** Superuser URL of the server's `postgres` database. */
  adminUrl: string;
  apiUrl: string;
  /** Run the bridge with `--cpu-prof` (profiles land in .tmp/bench/prof). */
  profile: boolean;
  /** Node arguments that start the CLI: the compiled build, or `--import tsx src/cli/main.ts`. */
  cli: readonly string[];
  log(line: string): void;
}

/**
 * Compiles the CLI like `npm run build` does, into .tmp/bench/dist (so dist/ is left alone), and
 * returns the node arguments that run it. Production runs the compiled build (bin/tuzhan-cdc.js);
 * `--import tsx` adds a loader thread and transpiling to the process (about 40 MB more RSS).
 * `root` is the checkout to build: another one (`--bridge DIR`) measures an older build with this
 * harness, so both run the same scenarios in the same session. `scratch` names the directory under
 * .tmp/ (the soak builds into its own).
 */
export function buildCli(root = ROOT, scratch = 'bench'): string[] {
  const tmp = join(root, '.tmp', scratch);
  const outDir = join(tmp, 'dist');
  const res = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir],
    { cwd: root, encoding: 'utf8' },
  );
  if (res.status !== 0) throw new Error(`building the CLI failed:\n${res.stdout}${res.stderr}`);
  // The CLI reads its version from ../../package.json, as dist/cli/main.js does.
  copyFileSync(join(root, 'package.json'), join(tmp, 'package.json'));
  return [join(outDir, 'cli/main.js')];
}

/** A fresh database for a scenario; returns its URL. */
export async function createDatabase(ctx: BenchContext, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: ctx.adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } finally {
    await admin.end();
  }
  const u = new URL(ctx.adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A connected client; the caller ends it. */
export async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'bench' });
  await c.connect();
  return c;
}

/** The benchmark's source table: one row per customer, groups as text (row mode). */
export const TABLE_SQL = `
  CREATE SCHEMA crm;
  CREATE TABLE crm.customer (id bigint PRIMARY KEY, third_id text NOT NULL, groups text);
  ALTER TABLE crm.customer REPLICA IDENTITY FULL;`;

export interface BridgeConfigOptions {
  dbUrl: string;
  apiUrl: string;
  slot: string;
  debounceMs?: number;
  maxWaitMs?: number;
  maxBatchSize?: number;
  concurrency?: number;
}

export function bridgeConfigYaml(o: BridgeConfigOptions): string {
  return `
postgres:
  url: ${o.dbUrl}
  slot: ${o.slot}
  publication: ${o.slot}
  statusSchema: ${STATUS_SCHEMA}
tuzhan:
  baseUrl: ${o.apiUrl}
  token: ${TOKEN}
  timeoutMs: 30000
  concurrency: ${o.concurrency ?? 4}
batching:
  maxBatchSize: ${o.maxBatchSize ?? 500}
  debounceMs: ${o.debounceMs ?? 200}
  maxWaitMs: ${o.maxWaitMs ?? 2000}
  maxBufferedRows: 10000
http:
  listen: "off"
log:
  level: info
sources:
  - name: customers
    table: crm.customer
    mode: row
    columns: { thirdId: third_id, groups: groups }
    match: { isMatching: false }
`;
}

export interface BridgeProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves with the time (ms) the bridge logged a line whose msg is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<number>;
  /** Peak RSS so far in MB, from /proc (VmHWM) or the 100 ms VmRSS samples, whichever is higher. */
  peakRssMB(): number;
  /** SIGTERM, wait for a clean exit; rejects on a non-zero exit. */
  stop(): Promise<void>;
}

function readStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // the process is gone
  }
}

/** The NODE_OPTIONS of the Dockerfile: the bench measures the bridge as it is deployed. */
export function deployedNodeOptions(): string[] {
  const m = /^\s*NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  if (!m?.[1]) throw new Error('Dockerfile: no NODE_OPTIONS="..." line for the bench to use');
  return m[1].split(' ').filter(Boolean);
}

/** Starts `tuzhan-cdc run` on a config (written to .tmp/bench/<name>.yaml). */
export function spawnBridge(ctx: BenchContext, name: string, yaml: string): BridgeProcess {
  mkdirSync(TMP, { recursive: true });
  const file = join(TMP, `${name}.yaml`);
  writeFileSync(file, yaml);
  // One directory per child: the tsx loader thread writes a profile of its own beside the main one.
  const profDir = join(TMP, 'prof', name);
  const args = [
    // The heap caps the Dockerfile deploys with (NODE_OPTIONS there); BENCH_NODE_ARGS replaces
    // them for experiments, e.g. BENCH_NODE_ARGS=--max-old-space-size=4096.
    ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? deployedNodeOptions()),
    ...(ctx.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
    ...ctx.cli,
    'run',
    '--config',
    file,
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid as number;
  const seen = new Map<string, number>();
  const waiters: Array<{ msg: string; resolve: (t: number) => void }> = [];
  const tail: string[] = [];
  const remember = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const t = Date.now();
    let msg: string | undefined;
    let level = 0;
    try {
      const o = JSON.parse(line) as { msg?: string; level?: number | string };
      msg = o.msg;
      // The bridge logs level names ("warn"); pino's numbers are kept for older logs.
      level =
        typeof o.level === 'string' ? ({ warn: 40, error: 50, fatal: 60 }[o.level] ?? 30) : (o.level ?? 0);
    } catch {
      remember(line);
      return;
    }
    if (level >= 40) ctx.log(`  bridge: ${line}`);
    if (msg === undefined) return;
    if (!seen.has(msg)) seen.set(msg, t);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i] as (typeof waiters)[number];
      if (w.msg === msg) {
        waiters.splice(i, 1);
        w.resolve(t);
      }
    }
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', remember);

  let peakKb = 0;
  const sampler = setInterval(() => {
    peakKb = Math.max(peakKb, readStatusKb(pid, 'VmRSS'));
  }, 100);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolveExit) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      clearInterval(sampler);
      resolveExit();
    }),
  );

  return {
    child,
    pid,
    waitForLog(msg, timeoutMs = 60_000) {
      const t = seen.get(msg);
      if (t !== undefined) return Promise.resolve(t);
      return new Promise((resolveLog, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`bridge did not log "${msg}" within ${timeoutMs} ms:\n${tail.join('\n')}`)),
          timeoutMs,
        );
        void exit.then(() =>
          reject(new Error(`bridge exited (${JSON.stringify(exited)}) before "${msg}":\n${tail.join('\n')}`)),
        );
        waiters.push({
          msg,
          resolve: (at) => {
            clearTimeout(timer);
            resolveLog(at);
          },
        });
      });
    },
    peakRssMB() {
      return Math.max(peakKb, readStatusKb(pid, 'VmHWM')) / 1024;
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await exit;
      if (exited?.code !== 0) {
        throw new Error(`bridge exited with ${JSON.stringify(exited)}:\n${tail.join('\n')}`);
      }
    },
  };
}

/** The server's insert position now (not pg_current_wal_lsn: async commits may not be written yet). */
export async function insertLsn(db: pg.Client): Promise<string> {
  const r = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  return (r.rows[0] as { lsn: string }).lsn;
}

/** Polls until the slot's confirmed_flush_lsn reaches `target`; resolves with the time seen. */
export async function waitConfirmed(
  db: pg.Client,
  slot: string,
  target: string,
  timeoutMs: number,
  intervalMs = 20,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await db.query<{ ok: boolean | null }>(
      `SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1`,
      [slot, target],
    );
    if (r.rows[0]?.ok) return Date.now();
    if (Date.now() > deadline)
      throw new Error(`slot ${slot} did not confirm ${target} within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}

/** Polls `<statusSchema>.bridge_state` until the first-start snapshot is done. */
export async function waitSnapshotDone(
  db: pg.Client,
  slot: string,
  timeoutMs: number,
): Promise<{ rows: number; seconds: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await db
      .query<{ rows: number; seconds: number }>(
        `SELECT snapshot_rows::int AS rows,
                extract(epoch FROM snapshot_done_at - snapshot_started_at)::float8 AS seconds
           FROM ${quoteIdent(STATUS_SCHEMA)}.bridge_state WHERE slot = $1 AND snapshot_done_at IS NOT NULL`,
        [slot],
      )
      .catch(() => ({ rows: [] })); // the schema may not exist yet
    const row = r.rows[0];
    if (row) return row;
    if (Date.now() > deadline) throw new Error(`snapshot of ${slot} not done within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export async function countStatus(db: pg.Client): Promise<Record<string, number>> {
  const r = await db.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM ${quoteIdent(STATUS_SCHEMA)}.sync_status GROUP BY status`,
  );
  return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
}

/**
 * Bytes the status table takes with its indexes (and TOAST): sync_row and sync_source since
 * migration 007, the sync_status table before it.
 */
export async function statusTableBytes(db: pg.Client): Promise<number> {
  const r = await db.query<{ n: string }>(
    `SELECT sum(pg_total_relation_size(c.oid))::text AS n FROM pg_class c
      WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND c.relname IN ('sync_row', 'sync_source', 'sync_status')`,
    [quoteIdent(STATUS_SCHEMA)],
  );
  return Number(r.rows[0]?.n ?? 0);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function median(xs: readonly number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

/**
 * What `cpuTimes()` reads of one process: its CPU seconds, its parent, the CPU seconds of its
 * children that ended and were reaped (how a server's short-lived processes are still counted),
 * and for PostgreSQL's processes their title (what `ps` shows: "postgres: walsender ...").
 */
export interface ProcTimes {
  comm: string;
  seconds: number;
  ppid: number;
  childSeconds: number;
  title?: string;
}

/** CPU seconds used so far by each live process (Linux /proc), by pid. */
export function cpuTimes(): Map<number, ProcTimes> {
  const out = new Map<number, ProcTimes>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // pid (comm) state ... : comm may hold spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      // Fields 4 (ppid), 14-15 (utime, stime) and 16-17 (cutime, cstime) of stat, counted from
      // 1, are 1, 11-12 and 13-14 after "state".
      const ticks = Number(f[11]) + Number(f[12]);
      const entry: ProcTimes = {
        comm,
        seconds: ticks / CLOCK_TICKS,
        ppid: Number(f[1]),
        childSeconds: (Number(f[13]) + Number(f[14])) / CLOCK_TICKS,
      };
      if (comm === 'postgres') entry.title = processTitle(p);
      out.set(Number(p), entry);
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

function processTitle(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

const CLOCK_TICKS = 100;

/** Where CPU went between two `cpuTimes()`: the bridge child, PostgreSQL, this harness (simulator included). */
export interface CpuSplit {
  bridge: number;
  postgres: number;
  harness: number;
  other: number;
}

export function cpuSplit(
  before: ReturnType<typeof cpuTimes>,
  after: ReturnType<typeof cpuTimes>,
  bridgePid: number,
): CpuSplit {
  const split: CpuSplit = { bridge: 0, postgres: 0, harness: 0, other: 0 };
  for (const [pid, a] of after) {
    const used = a.seconds - (before.get(pid)?.seconds ?? 0);
    if (used <= 0) continue;
    if (pid === bridgePid) split.bridge += used;
    else if (a.comm === 'postgres') split.postgres += used;
    else if (pid === process.pid) split.harness += used;
    else split.other += used;
  }
  return split;
}

/** A split as microseconds of CPU per row. */
export function perRowMicros(split: CpuSplit, rows: number): CpuSplit {
  // One decimal: the figures compared between builds are a few microseconds apart.
  const f = (s: number): number => Math.round((s * 1e7) / rows) / 10;
  return {
    bridge: f(split.bridge),
    postgres: f(split.postgres),
    harness: f(split.harness),
    other: f(split.other),
  };
}
