/**
 * `tuzhan-cdc retry-failed` as a command: the retry runs where the slot's requests are ordered
 * (docs/design.md, "Jobs"). While a daemon holds the slot, the retry is a job that daemon runs on
 * its own lanes, and this waits for its result. With no daemon running, it runs here, on
 * connections and lanes of its own, holding the slot's leader lock, so that a daemon starting
 * meanwhile waits for it; and when the daemon that was asked stops before taking the job, this
 * takes it over the same way. `--dry-run` sends nothing and reads here.
 */
import pg from 'pg';
import type { Config } from '../config/types.js';
import { BridgeError, errorMessage } from '../errors.js';
import { redactText, redactUrl, silentLogger } from '../ops/logger.js';
import { Leadership } from '../source/leader.js';
import { SentMark } from '../status/sent-mark.js';
import { StatusStore } from '../status/status-store.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { inDaemon, withOwnLanes } from './job-command.js';
import {
  emptyRetry,
  planPage,
  retryMapper,
  retrySources,
  runRetry,
  type RetryParams,
  type SourceRetry,
} from './retry-failed.js';

export interface RetryOptions extends RetryParams {
  dryRun?: boolean;
  /** Told when the retry was handed to the daemon as a job (its id). */
  onJob?(id: string): void;
  /** Stops waiting for the daemon's job (the job goes on there); rejects with `JOB_LEFT`. */
  signal?: AbortSignal;
}

/** Retries the failed rows of every source (or one): in the daemon when one holds the slot. */
export async function retryFailed(config: Config, options: RetryOptions): Promise<SourceRetry[]> {
  const { postgres } = config;
  const pool = new pg.Pool({
    ...pgClientConfig(postgres, 'tuzhan-cdc retry-failed'),
    max: 2,
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', () => {});
  const store = new StatusStore(pool, postgres.statusSchema, silentLogger());
  const leadership = new Leadership({
    clientConfig: pgClientConfig(postgres, 'tuzhan-cdc retry-failed lock'),
    slot: postgres.slot,
    logger: silentLogger(),
  });
  try {
    let pending: Map<string, number>;
    let alone: boolean;
    try {
      pending = await store.failedCounts(postgres.statusSchema);
      alone = options.dryRun === true || (await leadership.tryAcquire());
    } catch (err) {
      throw new BridgeError(
        'DB_UNREACHABLE',
        `cannot read sync_status via postgres.url (${redactUrl(postgres.url)}): ${redactText(errorMessage(err))}`,
        { cause: err },
      );
    }
    const sources = retrySources(config, options);
    if (options.dryRun) {
      const results: SourceRetry[] = [];
      for (const source of sources) {
        const r = emptyRetry(source.name);
        if ((pending.get(source.name) ?? 0) > 0) {
          const mapper = await retryMapper(pool, source);
          for await (const page of store.failedRows(source.name, 500, options.error))
            await planPage(pool, source, mapper, page, r);
        }
        results.push(r);
      }
      return results;
    }
    if (alone) return await retryHere(config, pool, store, options);
    if (!sources.some((s) => (pending.get(s.name) ?? 0) > 0)) return sources.map((s) => emptyRetry(s.name));
    return await retryInDaemon(config, pool, store, leadership, options);
  } finally {
    store.close();
    await leadership.release();
    await pool.end().catch(() => {});
  }
}

/** The retry on this process's own connections and lanes (the slot's lock is held: no daemon runs). */
function retryHere(
  config: Config,
  pool: pg.Pool,
  store: StatusStore,
  params: RetryParams,
): Promise<SourceRetry[]> {
  return withOwnLanes(config, store, (lanes, client) => {
    const sent = new SentMark(pool, config.postgres.statusSchema, config.postgres.slot, (_what, fn) => fn());
    return runRetry({ config, pool, store, sent, lanes }, params, client);
  });
}

/** Hands the retry to the daemon holding the slot (./job-command.ts) and waits for its result. */
function retryInDaemon(
  config: Config,
  pool: pg.Pool,
  store: StatusStore,
  leadership: Leadership,
  options: RetryOptions,
): Promise<SourceRetry[]> {
  const params = { source: options.source, error: options.error };
  return inDaemon({
    config,
    pool,
    leadership,
    kind: 'retry',
    source: options.source ?? null,
    params,
    what: 'retries',
    here: () => retryHere(config, pool, store, params),
    onJob: options.onJob,
    signal: options.signal,
  });
}
