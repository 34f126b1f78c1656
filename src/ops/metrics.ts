/**
 * Prometheus metrics, fed only by the pipeline's typed events (src/domain/events.ts). The registry is
 * our own, not prom-client's global one, so two bridges (or tests) in one process never collide.
 * Label values come from closed sets or are sanitized: no free text, hence no secrets and no
 * unbounded cardinality.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { listen, type BridgeEvents } from '../domain/events.js';
import { replaceEventLoopMetrics } from './eventloop-metrics.js';
import { parseLsn } from '../util/lsn.js';

const PREFIX = 'tuzhan_cdc_';

/** 5 ms .. 30 s: a loopback simulator answers in milliseconds, the platform under load in seconds. */
export const REQUEST_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The platform's `code` (or the HTTP status when there is none) as a label value. Codes are short
 * alphanumerics ("200", "100200"); anything else is collapsed so a strange answer cannot blow up
 * the series count or smuggle text into labels.
 */
export function codeLabel(code: string | undefined, httpStatus: number | undefined): string {
  if (code !== undefined) return /^[A-Za-z0-9_-]{1,16}$/.test(code) ? code : 'other';
  if (httpStatus !== undefined) return `http_${httpStatus}`;
  return 'none';
}

export interface MetricsOptions {
  /** Also collect Node process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
  /** Called when a listener fails; the emitter never sees the error. */
  onListenerError?: (err: unknown) => void;
  /** The version `build_info` carries. */
  version?: string;
}

export class Metrics {
  readonly registry = new Registry();

  readonly rows: Counter<'source' | 'op' | 'status'>;
  readonly unchanged: Counter<'source'>;
  readonly requests: Counter<'source' | 'opt_type' | 'outcome' | 'code'>;
  readonly requestDuration: Histogram<'source' | 'opt_type' | 'outcome'>;
  readonly retries: Counter<'source' | 'reason'>;
  readonly bufferedRows: Gauge;
  readonly inflightRows: Gauge;
  readonly slotLagBytes: Gauge;
  readonly slotLagSeconds: Gauge;
  readonly lastSuccess: Gauge;
  readonly streaming: Gauge;
  readonly apiReachable: Gauge;
  readonly platformAuthOk: Gauge;
  readonly safeWalSize: Gauge;
  readonly walStatus: Gauge<'status'>;
  readonly slotFailoverReady: Gauge;
  readonly syncRowsDone: Gauge<'source' | 'kind'>;
  readonly syncRowsTotal: Gauge<'source' | 'kind'>;
  readonly confirmedLsn: Gauge;
  readonly buildInfo: Gauge<'version' | 'node_version'>;
  readonly statusRows: Gauge<'source' | 'status'>;
  readonly requestRateLimit: Gauge;
  readonly platformQuota: Gauge;
  readonly concurrencyLimit: Gauge;
  readonly refused: Counter;
  readonly heldOldest: Gauge<'source'>;

  constructor(events: BridgeEvents, options: MetricsOptions = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
      replaceEventLoopMetrics(this.registry, PREFIX);
    }

    this.rows = new Counter({
      name: `${PREFIX}rows_total`,
      help: 'Source rows whose outcome was stored, by source, operation and status.',
      labelNames: ['source', 'op', 'status'],
      registers,
    });
    this.unchanged = new Counter({
      name: `${PREFIX}unchanged_changes_total`,
      help: 'Source row changes that left identity and groups as they were (an unmapped column changed): nothing sent, no outcome stored.',
      labelNames: ['source'],
      registers,
    });
    this.requests = new Counter({
      name: `${PREFIX}requests_total`,
      help: 'batchAdd requests by source, optType, outcome (ok, partial, rejected, transient, auth) and platform code.',
      labelNames: ['source', 'opt_type', 'outcome', 'code'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'batchAdd request latency, by source, optType and outcome (failed tries included).',
      labelNames: ['source', 'opt_type', 'outcome'],
      buckets: REQUEST_DURATION_BUCKETS,
      registers,
    });
    this.retries = new Counter({
      name: `${PREFIX}retries_total`,
      help: 'Requests scheduled for another try, by source and reason.',
      labelNames: ['source', 'reason'],
      registers,
    });
    this.bufferedRows = gauge(registers, 'buffered_rows', 'Rows waiting in batching buffers.');
    this.inflightRows = gauge(registers, 'inflight_rows', 'Rows in requests in flight.');
    this.slotLagBytes = gauge(
      registers,
      'slot_lag_bytes',
      'WAL bytes between the server position and the slot confirmed position.',
    );
    this.slotLagSeconds = gauge(
      registers,
      'slot_lag_seconds',
      'Age of the oldest change not yet confirmed on the slot.',
    );
    this.lastSuccess = gauge(
      registers,
      'last_success_timestamp_seconds',
      'Unix time of the last request the platform accepted (outcome ok or partial).',
    );
    this.streaming = gauge(registers, 'streaming', '1 while the replication stream is up.');
    this.apiReachable = gauge(registers, 'api_reachable', '1 while the last request reached the platform.');
    this.platformAuthOk = gauge(
      registers,
      'platform_auth_ok',
      '1 while the platform accepts the credentials, 0 once it refused them (until it accepts them again).',
    );
    this.platformAuthOk.set(1);
    this.safeWalSize = gauge(
      registers,
      'slot_safe_wal_size_bytes',
      'WAL the server may still write before it invalidates the slot (pg_replication_slots.safe_wal_size); -1 without max_slot_wal_keep_size.',
    );
    this.slotFailoverReady = gauge(
      registers,
      'slot_failover_ready',
      '1 when the slot would survive a promotion: a failover slot (PostgreSQL 17+) and every standby in synchronized_standby_slots streaming; 0 otherwise (tuzhan-cdc check says what is missing).',
    );
    this.walStatus = new Gauge({
      name: `${PREFIX}slot_wal_status`,
      help: "1 for the slot's wal_status (reserved, extended, unreserved, lost), 0 for the others.",
      labelNames: ['status'],
      registers,
    });
    this.syncRowsDone = new Gauge({
      name: `${PREFIX}sync_rows_done`,
      help: 'Rows of a source synced by the running snapshot or backfill (kind).',
      labelNames: ['source', 'kind'],
      registers,
    });
    this.syncRowsTotal = new Gauge({
      name: `${PREFIX}sync_rows_total`,
      help: 'Estimate of the rows the running snapshot or backfill (kind) of a source has to sync.',
      labelNames: ['source', 'kind'],
      registers,
    });
    this.confirmedLsn = gauge(
      registers,
      'confirmed_lsn_bytes',
      'The slot position the bridge last confirmed, as a byte offset (precise up to 2^53).',
    );

    this.buildInfo = new Gauge({
      name: `${PREFIX}build_info`,
      help: 'Always 1; the labels say which version of tuzhan-cdc runs on which Node.js.',
      labelNames: ['version', 'node_version'],
      registers,
    });
    this.buildInfo.set({ version: options.version ?? 'unknown', node_version: process.versions.node }, 1);
    this.statusRows = new Gauge({
      name: `${PREFIX}status_rows`,
      help: 'Rows of sync_status per source in status failed, retrying, accepted or held, counted every 15 s.',
      labelNames: ['source', 'status'],
      registers,
    });
    this.heldOldest = new Gauge({
      name: `${PREFIX}held_oldest_seconds`,
      help: 'Seconds since the oldest held row of a source was held (a mass removal waiting for tuzhan-cdc held); 0 when none is.',
      labelNames: ['source'],
      registers,
    });

    this.requestRateLimit = gauge(
      registers,
      'request_rate_limit',
      'Requests per second the bridge allows itself now: just under the platform quota it learned, or tuzhan.ratePerSecond; +Inf while nothing limits it.',
    );
    this.requestRateLimit.set(Infinity);
    this.platformQuota = gauge(
      registers,
      'platform_quota_learned',
      'The platform quota (requests per second) the bridge learned from its refusals; 0 until the first refusal.',
    );
    this.concurrencyLimit = gauge(
      registers,
      'request_concurrency_limit',
      'Requests the bridge allows in flight now (tuzhan.concurrency at most; fewer after 5xx answers, timeouts or a jump in latency).',
    );
    this.refused = new Counter({
      name: `${PREFIX}requests_refused_total`,
      help: 'Requests the platform refused for its quota (HTTP 429), retries included.',
      registers,
    });

    const onError = options.onListenerError ?? (() => {});
    listen(
      events,
      'rows',
      (e) => this.rows.inc({ source: e.source, op: e.op, status: e.status }, e.count),
      onError,
    );
    listen(events, 'unchanged', (e) => this.unchanged.inc({ source: e.source }, e.count), onError);
    listen(
      events,
      'request',
      (e) => {
        this.requests.inc({
          source: e.source,
          opt_type: e.optType,
          outcome: e.outcome,
          code: codeLabel(e.code, e.httpStatus),
        });
        this.requestDuration.observe(
          { source: e.source, opt_type: e.optType, outcome: e.outcome },
          e.durationMs / 1000,
        );
        if (e.outcome === 'ok' || e.outcome === 'partial') this.lastSuccess.set(Date.now() / 1000);
        // A transient failure says nothing about the credentials; every other answer does.
        if (e.outcome !== 'transient') this.platformAuthOk.set(e.outcome === 'auth' ? 0 : 1);
      },
      onError,
    );
    listen(events, 'retry', (e) => this.retries.inc({ source: e.source, reason: e.reason }), onError);
    listen(
      events,
      'buffer',
      (e) => {
        this.bufferedRows.set(e.buffered);
        this.inflightRows.set(e.inflight);
      },
      onError,
    );
    listen(
      events,
      'slotLag',
      (e) => {
        this.slotLagBytes.set(e.bytes);
        this.slotLagSeconds.set(e.seconds);
      },
      onError,
    );
    listen(events, 'streaming', (up) => this.streaming.set(up ? 1 : 0), onError);
    listen(
      events,
      'walSafety',
      (e) => {
        this.safeWalSize.set(e.safeWalSize ?? -1);
        for (const s of WAL_STATUSES) this.walStatus.set({ status: s }, e.walStatus === s ? 1 : 0);
      },
      onError,
    );
    listen(events, 'failover', (e) => this.slotFailoverReady.set(e.ready ? 1 : 0), onError);
    listen(
      events,
      'progress',
      (e) => {
        this.syncRowsDone.set({ source: e.source, kind: e.kind }, e.done);
        this.syncRowsTotal.set({ source: e.source, kind: e.kind }, e.total);
      },
      onError,
    );
    listen(events, 'apiReachable', (up) => this.apiReachable.set(up ? 1 : 0), onError);
    listen(events, 'confirmed', (e) => this.confirmedLsn.set(Number(parseLsn(e.lsn))), onError);
    let refused = 0;
    listen(
      events,
      'requestRate',
      (e) => {
        this.requestRateLimit.set(e.rate ?? Infinity);
        this.platformQuota.set(e.quota ?? 0);
        this.concurrencyLimit.set(e.concurrency);
        if (e.refused > refused) this.refused.inc(e.refused - refused);
        refused = e.refused;
      },
      onError,
    );
    listen(
      events,
      'statusRows',
      (counts) => {
        for (const c of counts) {
          this.statusRows.set({ source: c.source, status: c.status }, c.rows);
          if (c.status === 'held') this.heldOldest.set({ source: c.source }, c.oldest);
        }
      },
      onError,
    );
  }

  /** The exposition text and its content type, for the /metrics endpoint. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

const WAL_STATUSES = ['reserved', 'extended', 'unreserved', 'lost'];

function gauge(registers: Registry[], name: string, help: string): Gauge {
  return new Gauge({ name: `${PREFIX}${name}`, help, registers });
}
