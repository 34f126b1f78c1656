/**
 * One replication session: one connection attempt, streaming from the slot's confirmed position
 * until it is stopped or fails (powersync's `WalStream`). It knows nothing of retries, leadership
 * or the lifecycle: the supervisor owns those.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ChangeMessage, ColumnSelection } from '../decode/pgoutput.js';
import { ReplicationStream } from '../source/stream.js';

export interface SessionOptions {
  clientConfig: pg.ClientConfig;
  slot: string;
  publication: string;
  /** Ask for logical decoding messages (watermarks; PostgreSQL 14+). */
  messages: boolean;
  /** The columns to decode per relation (those the sources read). */
  columns?: ColumnSelection;
  logger: Logger;
  /** The position to confirm now. */
  confirmed(): bigint;
  /** A keepalive's position while everything received is handled; may be confirmed if nothing is pending. */
  onIdlePosition(lsn: bigint): void;
  onMessage(msg: ChangeMessage): Promise<void> | void;
  /** Called with the first message: the session works (the supervisor resets its backoff). */
  onFirstMessage?(): void;
  /** The server started streaming: the connection is up (not yet proven to work). */
  onStart?(): void;
}

export class ReplicationSession {
  private readonly stream: ReplicationStream;
  /** Why the session was let go of (see `letGo`). */
  private letGoReason: string | undefined;

  constructor(o: SessionOptions) {
    let first = true;
    this.stream = new ReplicationStream({
      clientConfig: o.clientConfig,
      slot: o.slot,
      publication: o.publication,
      messages: o.messages,
      columns: o.columns,
      logger: o.logger,
      confirmed: o.confirmed,
      onIdlePosition: o.onIdlePosition,
      onStart: o.onStart,
      onMessage: (msg) => {
        if (first) {
          first = false;
          o.onFirstMessage?.();
        }
        return o.onMessage(msg);
      },
    });
  }

  /**
   * Streams until `signal` aborts and `stop` closes (resolves) or a failure (rejects with it). A
   * session let go of rejects with the reason it was let go of. Once `signal` aborts (the bridge
   * stops), no more messages are taken; the drain comes before `stop`.
   */
  async run(signal: AbortSignal): Promise<void> {
    await this.stream.run(signal);
    if (signal.aborted) return;
    throw new Error(this.letGoReason ?? 'replication stream ended');
  }

  /** Whether `letGo` was called. */
  get lettingGo(): boolean {
    return this.letGoReason !== undefined;
  }

  /** Ends the connection now, without draining (the supervisor drains before the next session). */
  letGo(reason: string): boolean {
    if (this.letGoReason !== undefined) return false;
    this.letGoReason = reason;
    void this.stream.stop().catch(() => {});
    return true;
  }

  /** Sends the confirmed position, then closes. */
  stop(): Promise<void> {
    return this.stream.stop();
  }

  /** Sends the confirmed position if it moved. */
  sendStatus(): void {
    this.stream.sendStatus();
  }
}
