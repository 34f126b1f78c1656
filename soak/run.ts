/**
 * `npm run soak -- --minutes M --seed S [--rate N]`: a steady writer on hot keys of both source
 * shapes while a seeded schedule of ordinary faults runs (soak/schedule.ts): the bridge killed
 * (SIGKILL) and stopped (SIGTERM) and restarted as compose would, its walsender and other
 * connections dropped, PostgreSQL crashed and restarted, the platform failing, throttling, slow,
 * and losing answers after applying them. At the end, with the faults over: the platform equals the
 * tables and sync_status is true (soak/check.ts), the bridge never gave up on its own, and after
 * warm-up the last bridge's RSS grows by less than 5 MB over 30 minutes (judged on runs whose last
 * bridge lived 10 minutes or more past its warm-up). RSS and slot lag are sampled and printed.
 *
 * The seed fixes the schedule and the writer's statements; it is printed first, with the schedule,
 * and again on failure with the command that runs the same schedule. Exit code 0 when it passed.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startSimulator } from '../src/simulator/server.js';
import { startPostgres } from '../src/throwaway/postgres.js';
import { ROOT, buildCli, deployedNodeOptions, median, percentile } from '../bench/common.js';
import { verdict } from './check.js';
import { Compose, type RssSample } from './compose.js';
import { adminQuery, apply, clearPlatformFaults } from './faults.js';
import { describeFault, planFaults, rng, type FaultKind } from './schedule.js';
import { SOAK_SCHEMA, startWriter } from './writer.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    seed: { type: 'string' },
    rate: { type: 'string', default: '10' },
  },
});
const minutes = Number(values.minutes);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const rate = Number(values.rate);
if (!(minutes > 0) || !Number.isInteger(seed) || !(rate > 0))
  throw new Error('usage: npm run soak -- --minutes M [--seed S] [--rate N] (M, N > 0; S an integer)');

const SLOT = 'tuzhan_soak';
const STATUS_SCHEMA = 'tuzhan_sync';
const TOKEN = 'soak-token';
const WARM_UP_S = 180;
const JUDGE_RSS_AFTER_S = 600;
const RSS_LIMIT_MB = 5;
const CATCH_UP_MS = 300_000;

const log = (line: string): void => void process.stdout.write(`${line}\n`);
const reproduce = `npm run soak -- --minutes ${minutes} --seed ${seed}${values.rate === '10' ? '' : ` --rate ${rate}`}`;
const plan = planFaults(seed, Math.round(minutes * 60));
log(`soak: seed ${seed}, ${minutes} min, writer ${rate} tx/s; reproduce with: ${reproduce}`);
log(
  `soak: the schedule (${plan.events.length} faults; the bridge process is killed only in the first ${Math.round(plan.processPhaseSeconds)} s):`,
);
for (const e of plan.events) log(`  ${e.at.toFixed(1).padStart(7)}s  ${describeFault(e.fault)}`);

const scratch = join(ROOT, '.tmp', 'soak');
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
log('soak: compiling the bridge (as npm run build), starting PostgreSQL and the simulator');
const cli = buildCli(ROOT, 'soak');
// A server of its own: the soak crashes and restarts it. Commits are durable as in production.
const server = await startPostgres({ prefer: ['local', 'embedded'], settings: { synchronous_commit: 'on' } });
const sim = await startSimulator({ token: TOKEN, random: rng(seed ^ 0x51) });
let compose: Compose | undefined;
let failed = false;
try {
  await adminQuery(server.url, 'CREATE DATABASE soak');
  const url = Object.assign(new URL(server.url), { pathname: '/soak' }).toString();
  await adminQuery(url, SOAK_SCHEMA);
  const configFile = join(scratch, 'bridge.yaml');
  writeFileSync(configFile, bridgeYaml(url, sim.url));
  const argv = [
    ...deployedNodeOptions(),
    ...cli,
    'run',
    '--config',
    configFile,
    '--shutdown-timeout',
    '30000',
  ];
  const startedAt = Date.now();
  compose = new Compose(argv, join(scratch, 'bridge.log'), startedAt);
  compose.up();
  const writer = startWriter(url, seed, rate);
  const lag = sampleLag(url, startedAt);

  // The schedule, each fault at its time (late when the one before took longer: both times logged).
  const done = new Map<FaultKind, number>();
  for (const e of plan.events) {
    const wait = startedAt + e.at * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = (Date.now() - startedAt) / 1000;
    const what = await apply(e.fault, { compose, server, url, slot: SLOT, sim }).catch(
      (err: unknown) => `failed: ${err instanceof Error ? err.message : String(err)}`,
    );
    done.set(e.fault.kind, (done.get(e.fault.kind) ?? 0) + 1);
    log(`  [${at.toFixed(1).padStart(7)}s] ${describeFault(e.fault)}: ${what}`);
  }
  const end = startedAt + plan.seconds * 1000;
  if (end > Date.now()) await new Promise((r) => setTimeout(r, end - Date.now()));

  // The faults are over: the writer stops, and the bridge must bring the platform to the tables.
  clearPlatformFaults(sim);
  await writer.stop();
  await compose.whenRunning();
  const caughtUp = await catchUp(url);
  lag.stop();
  const v = await verdict(url, STATUS_SCHEMA, sim, writer.customers());
  const lastLife = compose.lives;
  await compose.term(true);

  // What the run saw.
  // A SIGKILL is the soak's; a SIGTERM must end in a clean exit within the grace period; any other
  // exit is the bridge giving up on its own (compose would restart it, and hide that).
  const unexpected = compose.exits.filter((x) => x.asked !== 'sigkill' && x.code !== 0);
  const stats = sim.stats();
  log('');
  log(
    `soak: writer committed ${writer.stats.committed} transactions (${writer.stats.failed} cut off by faults)`,
  );
  log(`soak: faults run: ${[...done].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  log(
    `soak: platform: ${stats.requests} requests; 500: ${stats.served500}, 429: ${stats.served429}, applied then 503: ${stats.appliedThenFailed}, timeouts: ${stats.timeouts}`,
  );
  log(
    `soak: bridge: ${compose.lives} lives; exits: ${compose.exits.map((x) => `${x.at.toFixed(0)}s ${x.asked ?? 'on its own'} -> ${x.code ?? x.signal}`).join(', ')}`,
  );
  const rss = rssReport(compose.rss, lastLife);
  for (const line of rss.lines) log(`soak: ${line}`);
  const lags = lag.samples.map((s) => s.bytes).sort((a, b) => a - b);
  log(
    `soak: slot lag (every 5 s, ${lags.length} samples): median ${kb(median(lags))}, p95 ${kb(percentile(lags, 95))}, max ${kb(lags.at(-1) ?? NaN)}`,
  );
  log(
    `soak: caught up ${caughtUp === null ? 'NOT within 5 minutes' : `${caughtUp.toFixed(1)} s`} after the faults ended`,
  );
  for (const [msg, n] of [...compose.warnings].sort((a, b) => b[1] - a[1]).slice(0, 12))
    log(`soak:   ${n} × ${msg}`);
  log(`soak: compared ${v.customers} customers and ${v.statusRows} sync_status rows`);

  // Every sample, for a closer look than the summary (.tmp/soak/samples.json).
  writeFileSync(join(scratch, 'samples.json'), JSON.stringify({ rss: compose.rss, lag: lag.samples }));
  const problems = [
    ...v.problems,
    ...(caughtUp === null ? ['the slot did not catch up within 5 minutes of the last fault'] : []),
    ...unexpected.map(
      (x) =>
        `the bridge ${x.asked === 'sigterm' ? 'did not stop cleanly on SIGTERM' : 'exited on its own'} at ${x.at.toFixed(1)}s (life ${x.life}): ${x.code ?? x.signal}`,
    ),
    ...(rss.growth !== null && rss.growth >= RSS_LIMIT_MB
      ? [`RSS grows by ${rss.growth.toFixed(1)} MB over 30 minutes`]
      : []),
  ];
  failed = problems.length > 0;
  for (const p of problems.slice(0, 40)) log(`soak: PROBLEM ${p}`);
  if (problems.length > 40) log(`soak: ... and ${problems.length - 40} more`);
  log(
    JSON.stringify({
      soak: failed ? 'FAIL' : 'PASS',
      seed,
      minutes,
      faults: plan.events.length,
      lives: compose.lives,
      committed: writer.stats.committed,
      rssGrowthMBPer30min: rss.growth === null ? null : Number(rss.growth.toFixed(2)),
      rssWindowMinutes: Number(rss.windowMinutes.toFixed(1)),
      lagMedianBytes: median(lags),
      lagP95Bytes: percentile(lags, 95),
      lagMaxBytes: lags.at(-1) ?? null,
      catchUpSeconds: caughtUp,
    }),
  );
  if (failed)
    log(`soak: FAILED; the same schedule runs again with: ${reproduce} (bridge log: .tmp/soak/bridge.log)`);
  else log(`soak: PASSED (seed ${seed})`);
} catch (err) {
  failed = true;
  log(`soak: FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  log(`soak: the same schedule runs again with: ${reproduce}`);
} finally {
  compose?.close();
  clearPlatformFaults(sim);
  await sim.close();
  await server.stop();
}
process.exit(failed ? 1 : 0);

function bridgeYaml(dbUrl: string, apiUrl: string): string {
  return `
postgres:
  url: ${dbUrl}
  slot: ${SLOT}
  publication: ${SLOT}
  statusSchema: ${STATUS_SCHEMA}
  onSlotLost: stop
tuzhan:
  baseUrl: ${apiUrl}
  token: ${TOKEN}
  timeoutMs: 3000
  concurrency: 4
batching:
  maxBatchSize: 500
  debounceMs: 50
  maxWaitMs: 500
  maxBufferedRows: 10000
http:
  listen: "off"
log:
  level: info
sources:
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: "Group Names" }
    match: { isMatching: false }
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: false }
`;
}

/** Samples the slot's lag every 5 s (skipping while the server is away). */
function sampleLag(
  url: string,
  startedAt: number,
): { samples: Array<{ at: number; bytes: number }>; stop(): void } {
  const samples: Array<{ at: number; bytes: number }> = [];
  const timer = setInterval(() => {
    const c = new pg.Client({ connectionString: url, application_name: 'soak' });
    c.on('error', () => {});
    void c
      .connect()
      .then(() =>
        c.query<{ lag: string | null }>(
          `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::text AS lag FROM pg_replication_slots WHERE slot_name = $1`,
          [SLOT],
        ),
      )
      .then((r) => {
        const lag = r.rows[0]?.lag;
        if (lag != null) samples.push({ at: (Date.now() - startedAt) / 1000, bytes: Number(lag) });
      })
      .catch(() => {})
      .finally(() => void c.end().catch(() => {}));
  }, 5000);
  return { samples, stop: () => clearInterval(timer) };
}

/** Seconds until the slot confirmed everything written (null after 5 minutes). */
async function catchUp(url: string): Promise<number | null> {
  const from = Date.now();
  const target = (await adminQuery<{ lsn: string }>(url, 'SELECT pg_current_wal_insert_lsn()::text AS lsn'))
    .rows[0]?.lsn;
  while (Date.now() - from < CATCH_UP_MS) {
    const r = await adminQuery<{ ok: boolean | null }>(
      url,
      'SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1',
      [SLOT, target],
    ).catch(() => ({ rows: [] as Array<{ ok: boolean | null }> }));
    if (r.rows[0]?.ok) return (Date.now() - from) / 1000;
    await new Promise((res) => setTimeout(res, 250));
  }
  return null;
}

/**
 * RSS of every life (first and last sample), and for the last life past its warm-up: the median of
 * its first and last minute, and the trend (least squares) as MB per 30 minutes. Judged only when
 * that window is 10 minutes or longer: over less, the heap's sawtooth is larger than the trend.
 */
function rssReport(
  samples: readonly RssSample[],
  lastLife: number,
): { lines: string[]; growth: number | null; windowMinutes: number } {
  const lines: string[] = [];
  const lives = [...new Set(samples.map((s) => s.life))];
  lines.push(
    `RSS per life (MB, first -> last sample): ${lives
      .map((l) => {
        const xs = samples.filter((s) => s.life === l);
        return `${l}: ${xs[0]?.mb.toFixed(0)} -> ${xs.at(-1)?.mb.toFixed(0)} (${((xs.at(-1)?.age ?? 0) / 60).toFixed(1)} min)`;
      })
      .join('; ')}`,
  );
  const win = samples.filter((s) => s.life === lastLife && s.age >= WARM_UP_S);
  const windowMinutes = win.length > 1 ? ((win.at(-1) as RssSample).age - (win[0] as RssSample).age) / 60 : 0;
  if (win.length < 3) {
    lines.push(`RSS of the last bridge after its ${WARM_UP_S / 60}-minute warm-up: too few samples`);
    return { lines, growth: null, windowMinutes };
  }
  const n = win.length;
  const mx = win.reduce((s, x) => s + x.age, 0) / n;
  const my = win.reduce((s, x) => s + x.mb, 0) / n;
  const slope =
    win.reduce((s, x) => s + (x.age - mx) * (x.mb - my), 0) / win.reduce((s, x) => s + (x.age - mx) ** 2, 0);
  const perHalfHour = slope * 1800;
  const first = median(win.filter((x) => x.age < (win[0] as RssSample).age + 60).map((x) => x.mb));
  const last = median(win.filter((x) => x.age > (win.at(-1) as RssSample).age - 60).map((x) => x.mb));
  const judged = windowMinutes * 60 >= JUDGE_RSS_AFTER_S;
  lines.push(
    `RSS of the last bridge after its ${WARM_UP_S / 60}-minute warm-up, over ${windowMinutes.toFixed(1)} min: ${first.toFixed(1)} -> ${last.toFixed(1)} MB (medians of the first and last minute); trend ${perHalfHour >= 0 ? '+' : ''}${perHalfHour.toFixed(2)} MB / 30 min${judged ? ` (limit ${RSS_LIMIT_MB})` : ' (not judged: under 10 minutes)'}`,
  );
  return { lines, growth: judged ? perHalfHour : null, windowMinutes };
}

function kb(bytes: number): string {
  return Number.isFinite(bytes) ? `${Math.round(bytes / 1024)} kB` : 'n/a';
}
