/**
 * The replication stream's outages as the log tells them: one warning when the stream is lost, the
 * further reconnect attempts at debug, and one line with the outage's true length when it is back.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';

export class Outage {
  private current: { since: number; attempts: number } | undefined;

  constructor(private readonly logger: Logger) {}

  /** The stream failed (again); the next attempt comes after `delayMs`. */
  lost(err: unknown, delayMs: number): void {
    const first = this.current === undefined;
    this.current ??= { since: Date.now(), attempts: 0 };
    this.current.attempts += 1;
    this.logger[first ? 'warn' : 'debug'](
      { err: errorMessage(err), delayMs, attempt: this.current.attempts },
      first
        ? 'replication stream lost; draining and reconnecting'
        : 'replication stream still down; reconnecting',
    );
  }

  /** The server streams again. */
  back(): void {
    if (!this.current) return;
    this.logger.info(
      {
        downSeconds: Math.round((Date.now() - this.current.since) / 1000),
        attempts: this.current.attempts,
      },
      'replication stream back',
    );
    this.current = undefined;
  }
}
