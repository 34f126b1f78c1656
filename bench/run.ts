/**
 * `npm run bench`: starts a throwaway PostgreSQL and the platform simulator, runs the scenarios
 * one after the other (never two measurements at once), prints a table, writes
 * bench/results/latest.json and ends with one JSON line of the headline figures.
 *
 *   npm run bench -- [--only throughput,latency,memory,snapshot,noise,updates,quota] [--repeat N]
 *                    [--profile] [--latency-seconds S] [--quota 5[,2,20]] [--tsx] [--bridge DIR]
 *
 * `--quota` lists the platform quotas (requests/s) the quota scenario runs at; the summary's quota
 * figures are those at 5 a second (or the first listed).
 * `--repeat N` runs the selected scenarios N times and reports medians; `--profile` runs every
 * bridge child with `--cpu-prof` (profiles in .tmp/bench/prof/). The bridge runs as a child
 * process from a compiled build, as in production; `--tsx` runs it from source instead, and
 * `--bridge DIR` builds and runs the bridge of another checkout (an older build, measured by this
 * harness in the same session).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startSimulator } from '../src/simulator/server.js';
import { startPostgres } from '../src/throwaway/postgres.js';
import { ROOT, TOKEN, buildCli, median, type BenchContext, type CpuSplit, type RowsHook } from './common.js';
import { runLatency, type LatencyResult } from './latency.js';
import { runMemory, type MemoryResult } from './memory.js';
import { runSnapshot, type SnapshotResult } from './snapshot.js';
import { runQuota, type QuotaResult } from './quota.js';
import { runNoise, runUpdates, type NoiseResult, type UpdatesResult } from './steady.js';
import { runThroughput, type ThroughputResult } from './throughput.js';
import { printPgRoles } from './pg-roles.js';

const SCENARIOS = ['throughput', 'latency', 'memory', 'snapshot', 'noise', 'updates', 'quota'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    repeat: { type: 'string', default: '1' },
    profile: { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
    bridge: { type: 'string' },
    'latency-seconds': { type: 'string', default: '30' },
    quota: { type: 'string', default: '5' },
  },
});
const only = (values.only?.split(',').map((s) => s.trim()) ?? [...SCENARIOS]) as Scenario[];
for (const s of only) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}`);
const repeat = Math.max(1, Number(values.repeat) || 1);
const quotas = (values.quota ?? '5').split(',').map(Number);
if (quotas.some((q) => !(q > 0))) throw new Error('--quota: requests per second > 0, comma-separated');

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const started = Date.now();

log(
  values.tsx
    ? 'bench: the bridge runs from source (tsx)'
    : `bench: compiling the bridge (as npm run build)${values.bridge ? ` of ${values.bridge}` : ''}`,
);
const cli = values.tsx ? ['--import', 'tsx', 'src/cli/main.ts'] : buildCli(values.bridge ?? ROOT);
log('bench: starting PostgreSQL and the simulator');
const pg = await startPostgres({
  log,
  settings: {
    // Large enough that 1M-row transactions do not force checkpoints mid-measurement.
    max_wal_size: '8GB',
    checkpoint_timeout: '30min',
    // The bridge's outcome commits wait for their WAL like in production (fsync stays off: the
    // throwaway server's disk is shared and noisy; see docs/benchmark.md).
    synchronous_commit: 'on',
  },
});
let hook: RowsHook | undefined;
const sim = await startSimulator({ token: TOKEN, onRows: (op, rows, at) => hook?.(op, rows, at) });
const ctx: BenchContext = { adminUrl: pg.url, apiUrl: sim.url, profile: values.profile, cli, log };

const runs: {
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  memory: MemoryResult[];
  snapshot: SnapshotResult[];
  noise: NoiseResult[];
  updates: UpdatesResult[];
  quota: QuotaResult[];
} = { throughput: [], latency: [], memory: [], snapshot: [], noise: [], updates: [], quota: [] };

try {
  for (let i = 0; i < repeat; i++) {
    for (const s of only) {
      sim.reset();
      const t = Date.now();
      if (s === 'throughput') runs.throughput.push(await runThroughput(ctx));
      if (s === 'latency')
        runs.latency.push(
          await runLatency(ctx, (h) => (hook = h), { seconds: Number(values['latency-seconds']) }),
        );
      if (s === 'memory') runs.memory.push(await runMemory(ctx, sim));
      if (s === 'snapshot') runs.snapshot.push(await runSnapshot(ctx));
      if (s === 'noise') runs.noise.push(await runNoise(ctx, sim));
      if (s === 'updates') runs.updates.push(await runUpdates(ctx));
      if (s === 'quota')
        for (const q of quotas) runs.quota.push(await runQuota(ctx, sim, (h) => (hook = h), q));
      log(`bench: ${s} run ${i + 1} took ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
  }
} finally {
  await sim.close();
  await pg.stop();
}

const med = <T>(xs: T[], f: (x: T) => number): number | null => (xs.length ? median(xs.map(f)) : null);
const headlineQuota = quotas.includes(5) ? 5 : (quotas[0] as number);
const atQuota = (q: number): QuotaResult[] => runs.quota.filter((r) => r.quota === q);
const summary = {
  e2eRowsPerSec: med(runs.throughput, (r) => r.e2eRowsPerSec),
  baselineRowsPerSec: med(runs.throughput, (r) => r.baselineRowsPerSec),
  ratio: med(runs.throughput, (r) => r.ratio),
  p50LatencyMs: med(runs.latency, (r) => r.p50LatencyMs),
  p99LatencyMs: med(runs.latency, (r) => r.p99LatencyMs),
  peakRssMB: med(runs.memory, (r) => r.peakRssMB),
  snapshotRowsPerSec: med(runs.snapshot, (r) => r.snapshotRowsPerSec),
  pgCpuUsPerRow: med(runs.throughput, (r) => r.e2eCpuUsPerRow.postgres),
  bridgeCpuUsPerRow: med(runs.throughput, (r) => r.e2eCpuUsPerRow.bridge),
  statusBytesPerRow: med(runs.throughput, (r) => r.statusBytesPerRow),
  // The goals are ratios to the bare consumer (harness) and the bare drain (PostgreSQL) of the same run.
  bridgeCpuRatio: med(runs.throughput, (r) => r.bridgeCpuRatio),
  pgCpuRatio: med(runs.throughput, (r) => r.pgCpuRatio),
  // The same, the bench server's processes only (other servers on the machine left out).
  pgServerCpuRatio: med(runs.throughput, (r) => r.pgServerCpuRatio),
  snapshotBridgeCpuUsPerRow: med(runs.snapshot, (r) => r.cpuUsPerRow.bridge),
  noiseRequests: med(runs.noise, (r) => r.requests),
  noiseStatusWrites: med(runs.noise, (r) => r.statusWrites),
  noiseBridgeCpuUsPerRow: med(runs.noise, (r) => r.bridgeCpuUsPerRow),
  statusWalBytesPerRow: med(runs.updates, (r) => r.statusWalBytesPerRow),
  sourceWalBytesPerRow: med(runs.updates, (r) => r.sourceWalBytesPerRow),
  quotaShare: med(atQuota(headlineQuota), (r) => r.quotaShare),
  quotaRefusedShare: med(atQuota(headlineQuota), (r) => r.quotaRefusedShare),
};

const fmt = (v: number | null, digits = 0): string =>
  v === null
    ? '-'
    : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const table: Array<[string, string, string, string]> = [
  ['throughput e2e (rows/s)', fmt(summary.e2eRowsPerSec), '', 'backlog of 200k rows, 2,000 tx'],
  ['throughput baseline (rows/s)', fmt(summary.baselineRowsPerSec), '', 'bare consumer, manual ack'],
  ['ratio e2e / baseline', fmt(summary.ratio, 2), '', ''],
  ['latency p50 (ms)', fmt(summary.p50LatencyMs), '', '2,000 rows/s, debounce 50, maxWait 100'],
  ['latency p99 (ms)', fmt(summary.p99LatencyMs), '<= 150', ''],
  ['peak RSS (MB)', fmt(summary.peakRssMB, 1), '<= 150', '1M-row tx, API 50 ms late'],
  ['snapshot (rows/s)', fmt(summary.snapshotRowsPerSec), '', '500k existing rows'],
  ['snapshot: bridge CPU per row (µs)', fmt(summary.snapshotBridgeCpuUsPerRow), '<= 15', ''],
  ['PostgreSQL CPU per row (µs)', fmt(summary.pgCpuUsPerRow), '', 'backlog phase'],
  ["  ÷ the bare drain's", fmt(summary.pgCpuRatio, 2), '<= 2.0', 'same run'],
  ['  the same, this server only', fmt(summary.pgServerCpuRatio, 2), '', 'roles below; other servers apart'],
  ['bridge CPU per row (µs)', fmt(summary.bridgeCpuUsPerRow), '', 'backlog phase'],
  ["  ÷ the bare consumer's", fmt(summary.bridgeCpuRatio, 2), '<= 2.0', 'same run'],
  ['sync_status bytes per row', fmt(summary.statusBytesPerRow), '', 'table + indexes, after the backlog'],
  ['noise: requests', fmt(summary.noiseRequests), '0', '100k synced rows, UPDATE of unmapped columns'],
  ['noise: status rows written', fmt(summary.noiseStatusWrites), '0', ''],
  ['noise: bridge CPU per row (µs)', fmt(summary.noiseBridgeCpuUsPerRow, 1), '<= 3', ''],
  [
    'status WAL per row (bytes)',
    fmt(summary.statusWalBytesPerRow),
    '<= 200',
    '100k synced rows, groups changed',
  ],
  ['source WAL per row (bytes)', fmt(summary.sourceWalBytesPerRow), '', 'the UPDATEs themselves, for scale'],
  ...(only.includes('quota') ? quotas : []).flatMap((q): Array<[string, string, string, string]> => [
    [
      `quota ${q}/s: share used`,
      fmt(
        med(atQuota(q), (r) => r.quotaShare),
        3,
      ),
      '>= 0.95',
      '20k rows, 50 a request',
    ],
    [
      `quota ${q}/s: share refused`,
      fmt(
        med(atQuota(q), (r) => r.quotaRefusedShare),
        3,
      ),
      '<= 0.05',
      '',
    ],
    [
      `quota ${q}/s: all synced after (s)`,
      fmt(
        med(atQuota(q), (r) => r.syncedSeconds),
        1,
      ),
      '',
      `ideal ${fmt(
        med(atQuota(q), (r) => r.requests / q),
        1,
      )} s (requests ÷ quota)`,
    ],
  ]),
];
const widths = [0, 1, 2, 3].map((i) => Math.max(...table.map((r) => r[i as 0].length), 6));
const line = (r: readonly string[]): string =>
  r.map((c, i) => (i === 1 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ');
log('');
log(line(['figure', 'value', 'goal', 'scenario']));
for (const r of table) log(line(r));
log(
  `(${repeat} run${repeat > 1 ? 's, medians' : ''}; ${pg.version}; ${((Date.now() - started) / 1000).toFixed(0)} s in all)`,
);

// Where the CPU went, per row: what bounds throughput when the machine's cores are all busy.
const cpuRows: Array<[string, CpuSplit[]]> = [
  ['baseline drain', runs.throughput.map((r) => r.baselineCpuUsPerRow)],
  ['bridge, backlog', runs.throughput.map((r) => r.e2eCpuUsPerRow)],
  ['bridge, snapshot', runs.snapshot.map((r) => r.cpuUsPerRow)],
  ['bridge, noise', runs.noise.map((r) => r.cpuUsPerRow)],
  ['bridge, updates', runs.updates.map((r) => r.cpuUsPerRow)],
];
if (cpuRows.some(([, xs]) => xs.length)) {
  const cores = availableParallelism();
  log('');
  log(`CPU per row (µs, medians; harness = simulator + baseline consumer; ${cores} cores)`);
  log(
    `${'phase'.padEnd(18)}${['bridge', 'postgres', 'harness', 'other', 'total'].map((h) => h.padStart(10)).join('')}  ${cores} cores allow (rows/s)`,
  );
  for (const [label, xs] of cpuRows) {
    if (!xs.length) continue;
    const m = (f: (x: CpuSplit) => number): number => median(xs.map(f));
    const total = m((x) => x.bridge + x.postgres + x.harness + x.other);
    const cells = [m((x) => x.bridge), m((x) => x.postgres), m((x) => x.harness), m((x) => x.other), total];
    log(
      `${label.padEnd(18)}${cells.map((c) => c.toFixed(1).padStart(10)).join('')}  ${fmt(total ? (cores * 1e6) / total : null).padStart(22)}`,
    );
  }
}

printPgRoles(
  log,
  [
    ['baseline drain', runs.throughput.map((r) => r.pgCpuByRole.baseline)],
    ['bridge, backlog', runs.throughput.map((r) => r.pgCpuByRole.backlog)],
    ['bridge, snapshot', runs.snapshot.map((r) => r.pgCpuByRole)],
    ['bridge, updates', runs.updates.map((r) => r.pgCpuByRole)],
  ],
  runs.throughput,
);

const resultsDir = join(ROOT, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, 'latest.json'),
  `${JSON.stringify({ at: new Date().toISOString(), postgres: pg.version, repeat, summary, runs }, null, 2)}\n`,
);
const round = (v: number | null, d = 0): number | null => (v === null ? null : Number(v.toFixed(d)));
process.stdout.write(
  `${JSON.stringify({
    e2eRowsPerSec: round(summary.e2eRowsPerSec),
    baselineRowsPerSec: round(summary.baselineRowsPerSec),
    ratio: round(summary.ratio, 3),
    p50LatencyMs: round(summary.p50LatencyMs, 1),
    p99LatencyMs: round(summary.p99LatencyMs, 1),
    peakRssMB: round(summary.peakRssMB, 1),
    snapshotRowsPerSec: round(summary.snapshotRowsPerSec),
    pgCpuUsPerRow: round(summary.pgCpuUsPerRow),
    bridgeCpuUsPerRow: round(summary.bridgeCpuUsPerRow),
    statusBytesPerRow: round(summary.statusBytesPerRow),
    bridgeCpuRatio: round(summary.bridgeCpuRatio, 2),
    pgCpuRatio: round(summary.pgCpuRatio, 2),
    pgServerCpuRatio: round(summary.pgServerCpuRatio, 2),
    snapshotBridgeCpuUsPerRow: round(summary.snapshotBridgeCpuUsPerRow),
    noiseRequests: round(summary.noiseRequests),
    noiseStatusWrites: round(summary.noiseStatusWrites),
    noiseBridgeCpuUsPerRow: round(summary.noiseBridgeCpuUsPerRow, 1),
    statusWalBytesPerRow: round(summary.statusWalBytesPerRow),
    sourceWalBytesPerRow: round(summary.sourceWalBytesPerRow),
    quotaShare: round(summary.quotaShare, 3),
    quotaRefusedShare: round(summary.quotaRefusedShare, 3),
  })}\n`,
);
