/**
 * The replication stream's outages as the log tells them: one warning when the stream is lost, the
 * further reconnect attempts at debug, and one line with the outage's true length (from the stream lost, to a tenth of a second) when it is
 * back.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';

export class Outage {
  private current: { since: number; attempts: number } | undefined;

  constructor(private readonly logger: Logger) {}

  /** The stream failed: the outage starts now unless it had (true: it starts now). */
  start(): boolean {
    const first = this.current === undefined;
    this.current ??= { since: Date.now(), attempts: 0 };
    return first;
  }

  /** The next attempt comes after `delayMs`: logged at warn when the outage is new, else at debug. */
  lost(err: unknown, delayMs: number, first: boolean): void {
    const current = (this.current ??= { since: Date.now(), attempts: 0 });
    current.attempts += 1;
    this.logger[first ? 'warn' : 'debug'](
      { err: errorMessage(err), delayMs, attempt: current.attempts },
      first ? 'replication stream lost; reconnecting' : 'replication stream still down; reconnecting',
    );
  }

  /** The server streams again. */
  back(): void {
    if (!this.current) return;
    this.logger.info(
      {
        downSeconds: Math.round((Date.now() - this.current.since) / 100) / 10,
        attempts: this.current.attempts,
      },
      'replication stream back',
    );
    this.current = undefined;
  }
}
