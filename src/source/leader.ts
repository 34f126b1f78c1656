/**
 * One active bridge per slot (docs/design.md, "One active bridge per slot"): a session advisory lock on a connection of its own.
 * A second instance waits as a standby and takes the lock when the first one's session ends. The
 * lock is only as good as its connection, so the connection is watched: when it fails (a server
 * shutting down terminates it first, a network cut stops the heartbeat), the lock is gone and the
 * holder is told at once, so it stops streaming before another instance can start.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { BridgeError, errorMessage } from '../errors.js';
import { sleep } from '../util/backoff.js';
import { RETRY, retryDelay } from '../util/retry.js';

/** Two int4 keys: a constant for the product and a hash of the slot name. */
export function leaderLockKey(slot: string): [number, number] {
  const h = createHash('sha256').update(`tuzhan-cdc:slot:${slot}`).digest();
  return [0x747a6c64, h.readInt32BE(0)];
}

export interface LeadershipOptions {
  clientConfig: pg.ClientConfig;
  slot: string;
  logger: Logger;
  /** How often the lock's connection is checked (a query that must answer within this time). */
  heartbeatMs?: number;
  /** How often a standby tries for the lock. */
  pollMs?: number;
  /**
   * How long an instance that lost the lock waits before trying for it again: longer than a
   * standby's poll, so a healthy standby takes over rather than the instance whose connection
   * just failed.
   */
  yieldMs?: number;
}

export class Leadership {
  private client: pg.Client | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly lostListeners: Array<(reason: string) => void> = [];
  private lostAt = 0;

  constructor(private readonly o: LeadershipOptions) {}

  /** Whether this instance holds the slot's lock right now. */
  get held(): boolean {
    return this.client !== undefined;
  }

  /** Called once each time a held lock is lost (not on `release`). */
  onLost(listener: (reason: string) => void): void {
    this.lostListeners.push(listener);
  }

  /**
   * Resolves once this instance holds the lock; waits as a standby meanwhile, and retries while the
   * database cannot be reached. Rejects only when `signal` aborts.
   */
  async acquire(signal: AbortSignal): Promise<void> {
    if (this.client) return;
    const yieldMs = this.o.yieldMs ?? 1500;
    const waited = Date.now() - this.lostAt;
    if (waited < yieldMs) await sleep(yieldMs - waited, signal);
    let announced = false;
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) throw new BridgeError('STOPPED', 'stopped while waiting for the leader lock');
      let taken: boolean;
      try {
        taken = await this.tryAcquire();
      } catch (err) {
        this.o.logger.debug({ err: errorMessage(err) }, 'cannot reach the database for the leader lock yet');
        await sleep(retryDelay(RETRY.leaderLock, attempt), signal);
        continue;
      }
      if (taken) {
        if (announced) this.o.logger.info({ slot: this.o.slot }, 'took over the slot');
        return;
      }
      if (!announced) {
        this.o.logger.info(
          { slot: this.o.slot },
          'another bridge streams from this slot; waiting as a standby',
        );
        announced = true;
      }
      attempt = 0;
      await sleep(this.o.pollMs ?? 1000, signal);
    }
  }

  /**
   * Takes the lock when nobody holds it, without waiting: true once held, false when another
   * process holds it; rejects when the database cannot be reached. A command that works alone
   * when no daemon runs (`retry-failed`) holds it meanwhile, so a daemon starting then waits.
   */
  async tryAcquire(): Promise<boolean> {
    if (this.client) return true;
    const client = new pg.Client({ ...this.o.clientConfig, query_timeout: this.heartbeatMs() });
    let failure: unknown;
    client.on('error', (err) => (failure ??= err));
    try {
      await client.connect();
      const res = await client.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock($1, $2) AS ok',
        leaderLockKey(this.o.slot),
      );
      if (res.rows[0]?.ok && failure === undefined) {
        this.hold(client);
        return true;
      }
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    await client.end().catch(() => {});
    return false;
  }

  /** Gives the lock up (the session ends; a standby takes over). */
  async release(): Promise<void> {
    const client = this.client;
    this.drop();
    await client?.end().catch(() => {});
  }

  private hold(client: pg.Client): void {
    this.client = client;
    const lost = (reason: string): void => {
      if (this.client !== client) return;
      this.drop();
      this.lostAt = Date.now();
      void client.end().catch(() => {});
      this.o.logger.warn({ slot: this.o.slot, reason }, 'lost the leader lock of the slot');
      for (const l of this.lostListeners) {
        try {
          l(reason);
        } catch (err) {
          this.o.logger.error({ err: errorMessage(err) }, 'a leader-lost listener failed');
        }
      }
    };
    client.removeAllListeners('error');
    client.on('error', (err) => lost(errorMessage(err)));
    client.on('end', () => lost('its connection ended'));
    this.heartbeat = setInterval(() => {
      client.query('SELECT 1').catch((err: unknown) => lost(`heartbeat failed: ${errorMessage(err)}`));
    }, this.heartbeatMs());
  }

  private drop(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.client = undefined;
  }

  private heartbeatMs(): number {
    return this.o.heartbeatMs ?? 5000;
  }
}
