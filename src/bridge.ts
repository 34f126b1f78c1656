/**
 * Wires the stages together: source (slot, snapshot, stream) -> decode -> mapping -> batching ->
 * platform client -> status store, with the position tracker deciding what the slot may confirm.
 * `start` runs the startup checks and returns once the bridge leads its slot and streams;
 * `stop` stops reading, drains, stores outcomes, confirms the position and closes.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { Batcher } from './batching/batcher.js';
import { Dispatcher, type BatchSender, type SourceRuntime } from './batching/dispatcher.js';
import { OrderedScheduler } from './batching/scheduler.js';
import type { Config } from './config/types.js';
import type { ChangeMessage, Relation, Row } from './decode/pgoutput.js';
import { BridgeError, SetupError, errorMessage, isConnectionLoss } from './errors.js';
import { toSourceChanges } from './mapping/changes.js';
import { SourceMapper, parseGroups, identityValue, type Identity } from './mapping/source-mapper.js';
import { prepareSlot, RESYNC_REMEDY, slotLostError } from './first-start.js';
import { createBridgeEvents, type BridgeEvents } from './ops/events.js';
import { checkServer, checkSource, mappedColumns, type Finding } from './source/catalog.js';
import { advanceSlot, ensurePublication, isSlotLostError } from './source/slot.js';
import { ReplicationStream } from './source/stream.js';
import { migrate } from './status/migrate.js';
import { PositionTracker, type Tx } from './status/positions.js';
import { SentMark } from './status/sent-mark.js';
import { StatusStore } from './status/status-store.js';
import { IDENTITY_FIELDS } from './config/types.js';
import { backoffDelay, sleep } from './util/backoff.js';
import { formatLsn } from './util/lsn.js';
import { guardCheckedOut, quoteIdent, quoteTable } from './util/sql.js';
import { Leadership } from './source/leader.js';
import { pgClientConfig } from './util/pg-connection.js';

export interface BridgeOptions {
  config: Config;
  logger: Logger;
  sender: BatchSender;
  events?: BridgeEvents;
  /** How often the slot lag is measured. */
  lagIntervalMs?: number;
  /** `run --resync`: drop the slot, create a new one and re-sync every source from its snapshot. */
  resync?: boolean;
}

/** Fails startup with every failed finding, one line each, with its fix. */
export function assertFindings(findings: Finding[]): void {
  const failed = findings.filter((f) => !f.ok);
  if (failed.length) {
    throw new SetupError(
      'STARTUP_CHECK',
      failed.map((f) => `${f.check}: ${f.detail}${f.fix ? ` — fix: ${f.fix}` : ''}`).join('\n'),
    );
  }
}

export class Bridge {
  readonly events: BridgeEvents;
  private readonly config: Config;
  private readonly logger: Logger;
  private readonly pool: pg.Pool;
  private readonly store: StatusStore;
  private readonly sent: SentMark;
  private readonly scheduler: OrderedScheduler;
  private readonly batcher: Batcher;
  private readonly runtimes = new Map<string, SourceRuntime>();
  private readonly byTable = new Map<string, SourceRuntime>();
  /** byTable by the decoder's relation objects (one per relation message), saving a string per row. */
  private readonly byRelation = new WeakMap<Relation, SourceRuntime | null>();
  private tracker = new PositionTracker(0n);
  private stream: ReplicationStream | undefined;
  private readonly leadership: Leadership;
  /** Why the current stream was let go of (see `letGo`). */
  private letGoReason: string | undefined;
  private tx: Tx | undefined;
  /** Row changes seen so far in the current transaction: a change's index, the same on replay. */
  private txSeq = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  /** Aborted when a stop begins: ends waits (standby, reconnect backoff) that would outlive it. */
  private readonly stopRequested = new AbortController();
  private fatal: unknown;
  private closing = false;

  constructor(private readonly o: BridgeOptions) {
    this.config = o.config;
    this.logger = o.logger;
    this.events = o.events ?? createBridgeEvents();
    this.pool = new pg.Pool({
      ...pgClientConfig(this.config.postgres, 'tuzhan-cdc'),
      max: this.config.tuzhan.concurrency + 4,
    });
    this.pool.on('error', (err) => {
      this.logger.warn({ err: errorMessage(err) }, 'idle database connection failed');
      if (isConnectionLoss(err)) this.letGo(`the database closed a connection: ${errorMessage(err)}`);
    });
    this.store = new StatusStore(this.pool, this.config.postgres.statusSchema, this.logger, (err) =>
      this.letGo(`cannot store outcomes: ${errorMessage(err)}`),
    );
    this.leadership = new Leadership({
      clientConfig: pgClientConfig(this.config.postgres, 'tuzhan-cdc leader'),
      slot: this.config.postgres.slot,
      logger: this.logger,
    });
    this.leadership.onLost((reason) => this.letGo(`lost the slot's leader lock: ${reason}`));
    this.sent = new SentMark(
      this.pool,
      this.config.postgres.statusSchema,
      this.config.postgres.slot,
      (what, fn) => this.store.withRetry(what, fn),
    );
    // The platform client enforces ratePerSecond on every attempt; the scheduler orders and bounds
    // concurrency only.
    this.scheduler = new OrderedScheduler({ concurrency: this.config.tuzhan.concurrency, ratePerSecond: 0 });
    const dispatcher = new Dispatcher({
      maxBatchSize: this.config.batching.maxBatchSize,
      sent: this.sent,
      sources: this.runtimes,
      sender: o.sender,
      store: this.store,
      scheduler: this.scheduler,
      events: this.events,
      logger: this.logger,
      onDone: (n) => this.batcher.done(n),
      signal: this.abort.signal,
      onFatal: (err) => this.fail(err),
    });
    this.batcher = new Batcher(this.config.batching, dispatcher, (buffered, inflight) =>
      this.events.emit('buffer', { buffered, inflight }),
    );
  }

  /** A failure that must end the daemon: nothing more is confirmed; the loop rejects with it. */
  private fail(err: unknown): void {
    this.fatal ??= err;
    this.stopping = true;
    this.stopRequested.abort();
    this.abort.abort();
    void this.stream?.stop();
  }

  /** The confirmed position (for tests and status). */
  get confirmedLsn(): bigint {
    return this.tracker.confirmed;
  }

  /**
   * Checks, migrates, waits for the slot's leadership, prepares publication and slot (with the
   * first-start snapshot) and starts streaming. Resolves once streaming has started; `done`
   * settles when the bridge stops.
   */
  async start(): Promise<void> {
    await this.prepare();
    this.loop = this.streamLoop().then(() => {
      if (this.fatal !== undefined) throw this.fatal;
    });
    this.loop.catch(() => {});
  }

  /** Settles when the stream loop ends: resolves after `stop`, rejects on a fatal error. */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  private async prepare(): Promise<void> {
    const db = await this.pool.connect().catch((err: unknown) => {
      throw new SetupError('DB_UNREACHABLE', `cannot connect to postgres.url: ${errorMessage(err)}`, {
        cause: err,
      });
    });
    const unguard = guardCheckedOut(db);
    try {
      const findings = await checkServer(db, this.config);
      for (const source of this.config.sources) {
        const r = await checkSource(db, source);
        findings.push(...r.findings);
        if (r.keyColumns && r.table) {
          const mapper = new SourceMapper(source, r.keyColumns);
          const table = r.table;
          const rt: SourceRuntime = {
            config: source,
            mapper,
            keyTypes: r.keyColumns.map((c) => table.columns.get(c)?.type ?? 'text'),
            readRow: (key) => this.readRow(source.schema, source.tableName, mapper.columns, key),
          };
          this.runtimes.set(source.name, rt);
          this.byTable.set(`${source.schema}.${source.tableName}`, rt);
        }
      }
      assertFindings(findings);
    } finally {
      unguard();
      db.release();
    }
    await migrate(this.pool, this.config.postgres.statusSchema);
    await this.leadership.acquire(this.stopRequested.signal);
    await ensurePublication(this.pool, this.config.postgres.publication, this.config.sources);
    this.tracker = new PositionTracker(await this.prepareSlot(this.o.resync === true));
    this.lagTimer = setInterval(() => void this.measureLag(), this.o.lagIntervalMs ?? 5000);
    this.tracker.onAdvance((lsn) => {
      this.events.emit('confirmed', { lsn: formatLsn(lsn) });
      if (!this.ackTimer) {
        this.ackTimer = setTimeout(() => {
          this.ackTimer = undefined;
          this.stream?.sendStatus();
        }, 20);
      }
    });
  }

  /** Resumes the slot, or (re)creates it and syncs every source from its snapshot. */
  private prepareSlot(resync: boolean): Promise<bigint> {
    return prepareSlot({
      pool: this.pool,
      store: this.store,
      resync,
      config: this.config,
      runtimes: this.runtimes,
      batcher: this.batcher,
      sent: this.sent,
      logger: this.logger,
    });
  }

  /**
   * Lets go of the replication connection at once, without draining: the server is shutting down
   * (its walsender would wait for confirmations the bridge cannot give while outcomes cannot be
   * stored, holding the shutdown hostage), or the leader lock is gone. The stream loop drains what
   * it holds, waits for the lock, and streams again from the slot's confirmed position.
   */
  private letGo(reason: string): void {
    const stream = this.stream;
    if (this.stopping || !stream || this.letGoReason !== undefined) return;
    this.letGoReason = reason;
    this.logger.warn(
      { reason },
      'letting go of the replication connection; streaming again once the database is back',
    );
    void stream.stop().catch(() => {});
  }

  private async streamLoop(): Promise<void> {
    for (let attempt = 1; !this.stopping;) {
      if (!this.leadership.held) {
        // Another instance may have streamed meanwhile: its sent positions count too.
        await this.leadership.acquire(this.stopRequested.signal).catch((err: unknown) => {
          if (!this.stopping) throw err;
        });
        if (this.stopping) return;
        await this.sent.load(
          this.config.sources.map((s) => s.name),
          true,
        );
      }
      const stream = new ReplicationStream({
        clientConfig: pgClientConfig(this.config.postgres, 'tuzhan-cdc'),
        slot: this.config.postgres.slot,
        publication: this.config.postgres.publication,
        logger: this.logger,
        confirmed: () => this.tracker.confirmed,
        onIdlePosition: (lsn) => {
          if (!this.tx && this.batcher.load === 0) this.tracker.confirmIdle(lsn);
        },
        onMessage: (msg) => {
          if (attempt > 1) attempt = 1;
          return this.handle(msg);
        },
      });
      this.stream = stream;
      this.letGoReason = undefined;
      this.events.emit('streaming', true);
      try {
        await stream.run();
        if (this.stopping) return;
        throw new Error(this.letGoReason ?? 'replication stream ended');
      } catch (err) {
        this.events.emit('streaming', false);
        if (this.stopping) return;
        if (err instanceof BridgeError && !err.retryable) throw err;
        if (isSlotLostError(err)) {
          if (this.config.postgres.onSlotLost !== 'resync')
            throw slotLostError(this.config.postgres.slot, `cannot be streamed from (${errorMessage(err)})`);
          this.logger.warn(
            { err: errorMessage(err) },
            'the slot is lost; re-syncing every source from a new slot',
          );
          await this.batcher.drain();
          this.tx = undefined;
          this.tracker = new PositionTracker(await this.prepareSlot(true));
          continue;
        }
        const delayMs = backoffDelay(attempt++, { baseMs: 500, maxMs: 30_000 });
        this.logger.warn(
          { err: errorMessage(err), delayMs },
          'replication stream lost; draining and reconnecting',
        );
        // What was received but not confirmed is sent again by the server: finish what we hold,
        // forget open transactions, and start from the slot's confirmed position.
        await this.batcher.drain();
        this.tracker.reset();
        this.tx = undefined;
        await sleep(delayMs, this.stopRequested.signal);
      }
    }
  }

  /** Handles one message; returns a promise only when the stream must wait (backpressure, TRUNCATE). */
  private handle(msg: ChangeMessage): Promise<void> | void {
    switch (msg.tag) {
      case 'begin':
        this.tx = this.tracker.begin(msg.commitLsn, msg.commitTime);
        this.txSeq = 0;
        return;
      case 'commit':
        if (this.tx) this.tracker.commit(this.tx, msg.endLsn);
        this.tx = undefined;
        return;
      case 'relation': {
        const rt = this.runtimeOf(msg.relation);
        if (!rt) return;
        const have = new Set(msg.relation.columns);
        const missing = [...mappedColumns(rt.config), ...rt.mapper.keyColumns].filter((c) => !have.has(c));
        if (missing.length) {
          // The WAL keeps the relation as it was when each change was made: restoring the column,
          // or renaming it in the config, does not make these changes readable. A new slot does.
          throw new SetupError(
            'SCHEMA_CHANGED',
            `source ${rt.config.name}: column ${missing.map((c) => `"${c}"`).join(', ')} of ${rt.config.table} is gone from the changes at ${formatLsn(this.tx?.commitLsn ?? 0n)}; nothing after that point is confirmed. Make the table and sources[].columns agree again (restore the column, or map its new name), then run \`${RESYNC_REMEDY}\`: the changes made meanwhile cannot be read from the WAL, so a new slot re-syncs every source`,
          );
        }
        return;
      }
      case 'insert':
      case 'update':
      case 'delete': {
        const rt = this.runtimeOf(msg.relation);
        const tx = this.tx;
        if (!rt || !tx) return;
        const changes = toSourceChanges(rt.mapper, msg);
        if ('error' in changes) {
          this.logger.error(
            { source: rt.config.name, reason: changes.error },
            'a change could not be traced to a row',
          );
          return;
        }
        const seq = this.txSeq++;
        for (const c of changes) this.batcher.add(rt.config.name, c, tx.commitLsn, seq, tx.commitTime, tx);
        if (this.batcher.full) return this.batcher.waitForRoom();
        return;
      }
      case 'truncate':
        return this.handleTruncate(msg.relations.map((r) => `${r.schema}.${r.name}`));
      default:
        return;
    }
  }

  private runtimeOf(relation: Relation): SourceRuntime | undefined {
    let rt = this.byRelation.get(relation);
    if (rt === undefined) {
      rt = this.byTable.get(`${relation.schema}.${relation.name}`) ?? null;
      this.byRelation.set(relation, rt);
    }
    return rt ?? undefined;
  }

  /** TRUNCATE: logged, recorded in sync_batch, and `onTruncate: delete-all` deletes every synced key. */
  private async handleTruncate(tables: string[]): Promise<void> {
    const tx = this.tx;
    const seq = this.txSeq++;
    for (const t of tables) {
      const rt = this.byTable.get(t);
      if (!rt) continue;
      const source = rt.config.name;
      this.logger.warn(
        { source, table: rt.config.table, onTruncate: rt.config.onTruncate },
        'source table truncated',
      );
      await this.store.writeRequest(
        source,
        {
          optType: 'truncate' as never,
          rows: 0,
          httpStatus: null,
          code: null,
          msg: `TRUNCATE ${rt.config.table} (onTruncate: ${rt.config.onTruncate})`,
          apiStatus: null,
          successNum: null,
          failNum: null,
          startedAt: new Date(),
          durationMs: 0,
        },
        [],
      );
      if (rt.config.onTruncate !== 'delete-all' || !tx) continue;
      // Deletes of everything synced so far must not overtake changes still buffered.
      await this.batcher.drain();
      for await (const page of this.store.syncedKeys(source)) {
        for (const k of page) {
          const identity: Identity = {};
          for (const f of IDENTITY_FIELDS) {
            const v = identityValue(k.payload[f]);
            if (v !== undefined) identity[f] = v;
          }
          const before = { identity, groups: parseGroups(k.payload.groups ?? null) ?? [] };
          this.batcher.add(
            source,
            {
              kind: 'delete',
              key: { text: k.rowKey, values: JSON.parse(k.rowKey) as Record<string, unknown> },
              before,
              after: null,
            },
            tx.commitLsn,
            seq,
            tx.commitTime,
            tx,
          );
        }
        await this.batcher.waitForRoom();
      }
    }
  }

  private async readRow(
    schema: string,
    table: string,
    columns: readonly string[],
    key: Record<string, unknown>,
  ): Promise<Row | null> {
    const keys = Object.keys(key);
    const where = keys.map((k, i) => `${quoteIdent(k)} = $${i + 1}`).join(' AND ');
    const res = await this.store.withRetry('reading a source row', () =>
      this.pool.query<Row>(
        `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${quoteTable(schema, table)} WHERE ${where}`,
        keys.map((k) => key[k]),
      ),
    );
    return res.rows[0] ?? null;
  }

  private async measureLag(): Promise<void> {
    try {
      const res = await this.pool.query<{ bytes: string | null }>(
        `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS bytes
           FROM pg_replication_slots WHERE slot_name = $1`,
        [this.config.postgres.slot],
      );
      const bytes = Number(res.rows[0]?.bytes ?? 0);
      const oldest = this.tracker.oldestOpenCommitTime();
      this.events.emit('slotLag', {
        bytes,
        seconds: oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0,
      });
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'measuring slot lag failed');
    }
  }

  /**
   * Graceful stop: stop reading, drain buffers and requests, store outcomes, confirm the position,
   * close. After `timeoutMs` pending retries are aborted (nothing unstored is confirmed).
   */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.stopping = true;
    this.stopRequested.abort();
    clearInterval(this.lagTimer);
    this.stream?.pause();
    const timer = setTimeout(() => this.abort.abort(), timeoutMs);
    try {
      if (this.fatal === undefined) {
        // Past the timeout, retries are aborted and what is still unanswered stays unconfirmed:
        // the next start sends it again.
        const aborted = new Promise<void>((resolve) =>
          this.abort.signal.addEventListener('abort', () => resolve()),
        );
        const drained = await Promise.race([
          this.batcher.drain().then(
            () => true,
            (err: unknown) => {
              this.logger.warn({ err: errorMessage(err) }, 'drain failed');
              return true;
            },
          ),
          aborted.then(() => false),
        ]);
        if (!drained) this.logger.warn({ timeoutMs }, 'stopping without a full drain: timed out');
      }
      await this.stream?.stop();
      await this.loop?.catch(() => {});
      if (this.tracker.confirmed > 0n) {
        await advanceSlot(this.pool, this.config.postgres.slot, this.tracker.confirmed, formatLsn).catch(
          (err: unknown) =>
            this.logger.warn({ err: errorMessage(err) }, 'confirming the final position failed'),
        );
      }
    } finally {
      clearTimeout(timer);
      clearTimeout(this.ackTimer);
      this.abort.abort();
      this.store.close();
      await this.leadership.release();
      await this.pool.end().catch(() => {});
    }
  }
}
