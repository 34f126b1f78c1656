/**
 * `tuzhan-cdc held --approve | --reject` as a command: the work runs where the slot's requests are
 * ordered (./job-command.ts): a job for the daemon holding the slot, whose guard then lets the keys
 * go; with no daemon running, here, on lanes of its own under the slot's lock.
 */
import pg from 'pg';
import type { Config } from '../config/types.js';
import { BridgeError, errorMessage } from '../errors.js';
import { redactText, redactUrl, silentLogger } from '../ops/logger.js';
import { Leadership } from '../source/leader.js';
import { HeldStore, type HeldGroup } from '../status/held.js';
import { readHeld } from '../status/reads.js';
import { SentMark } from '../status/sent-mark.js';
import { StatusStore } from '../status/status-store.js';
import { pgClientConfig } from '../util/pg-connection.js';
import { settleHeld, type HeldAction, type HeldParams, type HeldResult } from './held.js';
import { inDaemon, withOwnLanes } from './job-command.js';

export interface HeldCommandOptions extends HeldParams {
  /** Told when the work was handed to the daemon as a job (its id). */
  onJob?(id: string): void;
  /** Stops waiting for the daemon's job (the job goes on there). */
  signal?: AbortSignal;
}

/** What is held (one source's, or every one's), oldest first; empty before a bridge ever ran. */
export async function listHeld(config: Config, source?: string): Promise<HeldGroup[]> {
  return withPool(config, 'tuzhan-cdc held', (pool) =>
    readHeld(pool, config.postgres.statusSchema, source ?? null),
  );
}

/** Approves or rejects what is held; [] when nothing is. */
export async function settleHeldCommand(
  config: Config,
  action: HeldAction,
  options: HeldCommandOptions,
): Promise<HeldResult[]> {
  const { postgres } = config;
  return withPool(config, `tuzhan-cdc held --${action}`, async (pool) => {
    if ((await readHeld(pool, postgres.statusSchema, options.source ?? null)).length === 0) return [];
    const store = new StatusStore(pool, postgres.statusSchema, silentLogger());
    const held = new HeldStore(pool, postgres.statusSchema);
    const leadership = new Leadership({
      clientConfig: pgClientConfig(postgres, `tuzhan-cdc held lock`),
      slot: postgres.slot,
      logger: silentLogger(),
    });
    const params = { source: options.source };
    const here = (): Promise<HeldResult[]> =>
      withOwnLanes(config, store, (lanes, client) => {
        const sent = new SentMark(pool, postgres.statusSchema, postgres.slot, (_what, fn) => fn());
        return settleHeld({ config, pool, store, sent, lanes, held }, action, params, client);
      });
    try {
      if (await leadership.tryAcquire()) return await here();
      return await inDaemon({
        config,
        pool,
        leadership,
        kind: action,
        source: options.source ?? null,
        params,
        what: 'approvals or rejections of held rows',
        here,
        onJob: options.onJob,
        signal: options.signal,
      });
    } finally {
      store.close();
      await leadership.release();
    }
  });
}

async function withPool<T>(config: Config, name: string, run: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({
    ...pgClientConfig(config.postgres, name),
    max: 2,
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', () => {});
  try {
    return await run(pool);
  } catch (err) {
    // The database's errors (a SQLSTATE or a connection's code) say it cannot be reached or read.
    if (err instanceof BridgeError || typeof (err as { code?: unknown }).code !== 'string') throw err;
    throw new BridgeError(
      'DB_UNREACHABLE',
      `cannot read sync_status via postgres.url (${redactUrl(config.postgres.url)}): ${redactText(errorMessage(err))}`,
      { cause: err },
    );
  } finally {
    await pool.end().catch(() => {});
  }
}
