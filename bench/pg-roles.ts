/**
 * PostgreSQL's CPU during a phase, by what each process of the bench's server does: the walsender
 * (decoding the WAL for a slot), the bridge's client backends (its status writes), the bench's own
 * connections (polling), the background processes, and the processes that ended within the phase
 * (autovacuum workers, closed connections; counted through the postmaster's reaped children).
 * Processes named `postgres` that belong to another server on the machine (other people's tests)
 * are kept apart: the `postgres` figure of `CpuSplit` counts them too.
 */
import type pg from 'pg';
import { cpuTimes, median, type ProcTimes } from './common.js';

/** CPU seconds (or, from `perRowRoles`, microseconds per row) by role. */
export interface PgCpuByRole {
  walsender: number;
  bridgeBackends: number;
  benchBackends: number;
  walwriter: number;
  checkpointer: number;
  bgwriter: number;
  autovacuum: number;
  /** The postmaster, the launchers, I/O workers and anything else of the server. */
  otherBackground: number;
  /** Processes of the server that ended within the phase (reaped by the postmaster). */
  ended: number;
  /** The bench server's processes in all: the sum of the fields above. */
  server: number;
  /** Processes named postgres of other servers on the machine (not this bench's). */
  otherServers: number;
}

export type Role = Exclude<keyof PgCpuByRole, 'ended' | 'server' | 'otherServers'>;

/** What the server says of its processes: backend type and application name, by pid. */
export type Backends = Map<number, { type: string; app: string }>;

/** The pid of the postmaster of the server `db` is connected to: its backend's parent. */
export async function postmasterPid(db: pg.Client, times: Map<number, ProcTimes>): Promise<number> {
  const r = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const backend = times.get(r.rows[0]?.pid ?? -1);
  if (!backend) throw new Error('bench: the server runs elsewhere (no /proc entry for its backend)');
  return backend.ppid;
}

/** The server's processes now, from pg_stat_activity (the background ones included). */
export async function backends(db: pg.Client, into: Backends = new Map()): Promise<Backends> {
  const r = await db.query<{ pid: number; type: string | null; app: string | null }>(
    'SELECT pid, backend_type AS type, application_name AS app FROM pg_stat_activity',
  );
  for (const row of r.rows) into.set(row.pid, { type: row.type ?? '', app: row.app ?? '' });
  return into;
}

/** A process's role, from pg_stat_activity when it lists it, else from its title. */
export function roleOf(
  known: { type: string; app: string } | undefined,
  title: string,
  bridgeApp: string,
): Role {
  const type = known?.type ?? titleType(title);
  switch (type) {
    case 'walsender':
      return 'walsender';
    case 'client backend':
      return known?.app.startsWith(bridgeApp) ? 'bridgeBackends' : 'benchBackends';
    case 'walwriter':
      return 'walwriter';
    case 'checkpointer':
      return 'checkpointer';
    case 'background writer':
      return 'bgwriter';
    case 'autovacuum launcher':
    case 'autovacuum worker':
      return 'autovacuum';
    default:
      return 'otherBackground';
  }
}

const TITLED = [
  'walsender',
  'walwriter',
  'checkpointer',
  'background writer',
  'autovacuum launcher',
  'autovacuum worker',
];

/** "postgres: walsender postgres 127.0.0.1(1234) ..." -> walsender; a client's title names its user. */
function titleType(title: string): string {
  const rest = title.replace(/^postgres:\s*/, '');
  if (rest === title) return 'postmaster'; // the postmaster keeps its command line
  return TITLED.find((t) => rest.startsWith(t)) ?? (/\(\d+\)/.test(rest) ? 'client backend' : 'other');
}

/**
 * Where the bench server's CPU went between two `cpuTimes()` samples. `known` is pg_stat_activity
 * read during the phase (a client backend's application name is only there); `bridgeApp` the
 * prefix of the bridge's application names.
 */
export function pgRoleSplit(
  before: Map<number, ProcTimes>,
  after: Map<number, ProcTimes>,
  postmaster: number,
  known: Backends,
  bridgeApp = 'tuzhan-cdc',
): PgCpuByRole {
  const split: PgCpuByRole = {
    walsender: 0,
    bridgeBackends: 0,
    benchBackends: 0,
    walwriter: 0,
    checkpointer: 0,
    bgwriter: 0,
    autovacuum: 0,
    otherBackground: 0,
    ended: 0,
    server: 0,
    otherServers: 0,
  };
  const ours = (pid: number, p: ProcTimes): boolean => pid === postmaster || p.ppid === postmaster;
  for (const [pid, a] of after) {
    if (a.comm !== 'postgres') continue;
    const used = a.seconds - (before.get(pid)?.seconds ?? 0);
    if (used <= 0) continue;
    if (!ours(pid, a)) split.otherServers += used;
    else split[roleOf(known.get(pid), a.title ?? '', bridgeApp)] += used;
  }
  // Children reaped within the phase: all their CPU is in the postmaster's cutime/cstime, less what
  // those alive at the first sample had already used.
  const pm0 = before.get(postmaster);
  const pm1 = after.get(postmaster);
  if (pm0 && pm1) {
    let earlier = 0;
    for (const [pid, b] of before) if (b.ppid === postmaster && !after.has(pid)) earlier += b.seconds;
    split.ended = Math.max(0, pm1.childSeconds - pm0.childSeconds - earlier);
  }
  split.server =
    split.walsender +
    split.bridgeBackends +
    split.benchBackends +
    split.walwriter +
    split.checkpointer +
    split.bgwriter +
    split.autovacuum +
    split.otherBackground +
    split.ended;
  return split;
}

/**
 * Starts a role split at the CPU sample `at` (the start of a phase); the function it returns ends
 * it at `end` (default: now) and must be called while the bridge still holds its connections (their
 * application names tell them apart).
 */
export async function startRoleMeter(
  db: pg.Client,
  at: Map<number, ProcTimes>,
): Promise<(end?: Map<number, ProcTimes>) => Promise<PgCpuByRole>> {
  const postmaster = await postmasterPid(db, at);
  const known = await backends(db);
  return async (end = cpuTimes()) => pgRoleSplit(at, end, postmaster, await backends(db, known));
}

/** What the walsender of a slot decoded (pg_stat_replication_slots, PostgreSQL 14+), cumulative. */
export interface SlotDecoded {
  /** Transactions and bytes of changes passed to the output plugin (`total_txns`, `total_bytes`). */
  txns: number;
  bytes: number;
  /** Bytes of changes spilled to disk (`spill_bytes`). */
  spillBytes: number;
}

/**
 * A slot's decoding statistics, or zeros where the view is missing (PostgreSQL 13). The walsender
 * reports them as it goes and when it exits: read them once it has.
 */
export async function slotDecoded(db: pg.Client, slot: string): Promise<SlotDecoded> {
  const r = await db
    .query<{ txns: string; bytes: string; spill: string }>(
      `SELECT total_txns::text AS txns, total_bytes::text AS bytes, spill_bytes::text AS spill
         FROM pg_stat_replication_slots WHERE slot_name = $1`,
      [slot],
    )
    .catch(() => ({ rows: [] }));
  const row = r.rows[0];
  return {
    txns: Number(row?.txns ?? 0),
    bytes: Number(row?.bytes ?? 0),
    spillBytes: Number(row?.spill ?? 0),
  };
}

/** A role split as microseconds of CPU per row, one decimal. */
export function perRowRoles(split: PgCpuByRole, rows: number): PgCpuByRole {
  const out = { ...split };
  for (const k of Object.keys(out) as Array<keyof PgCpuByRole>)
    out[k] = Math.round((split[k] * 1e7) / rows) / 10;
  return out;
}

const COLUMNS: Array<[keyof PgCpuByRole, string]> = [
  ['walsender', 'walsender'],
  ['bridgeBackends', 'bridge'],
  ['benchBackends', 'bench'],
  ['walwriter', 'walwriter'],
  ['checkpointer', 'checkpt'],
  ['bgwriter', 'bgwriter'],
  ['autovacuum', 'autovac'],
  ['otherBackground', 'other bg'],
  ['ended', 'ended'],
  ['server', 'server'],
  ['otherServers', 'elsewhere'],
];

/**
 * Prints the medians of the role splits of each phase that ran (`phases`: label, one split per
 * run), and what the walsenders of the throughput scenario decoded.
 */
export function printPgRoles(
  log: (line: string) => void,
  phases: ReadonlyArray<[string, PgCpuByRole[]]>,
  throughput: ReadonlyArray<{ rows: number; slotDecoded: { baseline: SlotDecoded; backlog: SlotDecoded } }>,
): void {
  if (!phases.some(([, xs]) => xs.length)) return;
  log('');
  log(
    'PostgreSQL CPU per row by process (µs, medians; bridge/bench = client backends; ended = exited in the phase; elsewhere = other servers)',
  );
  log(`${'phase'.padEnd(18)}${COLUMNS.map(([, h]) => h.padStart(10)).join('')}`);
  for (const [label, xs] of phases) {
    if (!xs.length) continue;
    const cells = COLUMNS.map(([k]) => median(xs.map((x) => x[k])));
    log(`${label.padEnd(18)}${cells.map((c) => c.toFixed(1).padStart(10)).join('')}`);
  }
  if (!throughput.length) return;
  const decoded = (phase: 'baseline' | 'backlog'): string => {
    const bytes = median(throughput.map((r) => r.slotDecoded[phase].bytes / r.rows));
    const txns = median(throughput.map((r) => r.slotDecoded[phase].txns));
    return `${bytes.toFixed(0)} bytes a row in ${txns} transactions`;
  };
  log(`decoded for the output plugin: bare drain ${decoded('baseline')}, backlog ${decoded('backlog')}`);
}
