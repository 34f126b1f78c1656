/**
 * The replication stream: the only importer of pg-logical-replication. Acknowledgement is manual
 * (`auto: false`) and the library's timer is off (`timeoutSeconds: 0`): it would confirm the last
 * *received* position. We confirm only positions the tracker allows, answer keepalives that ask
 * for a reply, and send our position every few seconds ourselves, so the server's
 * wal_sender_timeout never fires while the handler holds the stream back (backpressure).
 */
import type pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import type { Logger } from 'pino';
import { PgoutputReader, type ChangeMessage, type ColumnSelection } from '../decode/pgoutput.js';
import { formatLsn, parseLsn } from '../util/lsn.js';

/**
 * The library's pgoutput plugin (START_REPLICATION and its options) with our reader in place of its
 * parser: the library's decodes every column of every row into objects; ours reads only what the
 * sources map, straight into the bridge's messages (docs/benchmark.md).
 */
class MappedPgoutputPlugin extends PgoutputPlugin {
  constructor(
    options: ConstructorParameters<typeof PgoutputPlugin>[0],
    private readonly reader: PgoutputReader,
  ) {
    super(options);
  }

  override parse(buffer: Buffer): ReturnType<PgoutputPlugin['parse']> {
    return this.reader.read(buffer) as unknown as ReturnType<PgoutputPlugin['parse']>;
  }
}

export interface StreamOptions {
  clientConfig: pg.ClientConfig;
  slot: string;
  publication: string;
  /** Ask for logical decoding messages (the bridge's watermarks; PostgreSQL 14+). */
  messages?: boolean;
  /** The columns to decode per relation (default: all of them). */
  columns?: ColumnSelection;
  logger: Logger;
  /** The position to confirm now (the tracker's). */
  confirmed(): bigint;
  /**
   * A keepalive's position, offered while everything received has been handled; the callee may
   * confirm it when nothing is pending.
   */
  onIdlePosition(lsn: bigint): void;
  /**
   * Handles one message. Returning a promise means "wait": the stream reads on only once it
   * resolves, so return one only when needed (backpressure), not for every message.
   */
  onMessage(msg: ChangeMessage): Promise<void> | void;
  /** The server has started streaming (START_REPLICATION accepted). */
  onStart?(): void;
  statusIntervalMs?: number;
}

/** One replication connection's life: resolves when it ends, rejects with the reason it broke. */
export class ReplicationStream {
  private service: LogicalReplicationService | undefined;
  /** A handler is waiting: messages already read are queued here, the socket is paused. */
  private waiting = false;
  private queue: ChangeMessage[] = [];
  private failure: unknown;
  private statusTimer: NodeJS.Timeout | undefined;
  private lastSent = -1n;
  /** `stop` was called: close now. */
  private readonly closing = new AbortController();
  /** The bridge is stopping (`run`'s signal): take no more messages; `stop` closes after the drain. */
  private stopping: AbortSignal = this.closing.signal;

  constructor(private readonly o: StreamOptions) {}

  /** Whether messages are still taken: neither the bridge's stop nor `stop` came. */
  private get taking(): boolean {
    return !this.stopping.aborted && !this.closing.signal.aborted;
  }

  /**
   * Streams from the slot's confirmed position until `stop` or an error. Once `signal` aborts (the
   * bridge stops), no more messages are taken; the connection stays open for the drain, and `stop`
   * sends the final position and closes it.
   */
  async run(signal?: AbortSignal): Promise<void> {
    if (signal) this.stopping = AbortSignal.any([signal, this.closing.signal]);
    // The library's flow control awaits every message through a promise chain, which halves the
    // rate of the stream. Messages are handled synchronously instead; only when a handler has to
    // wait (backpressure, TRUNCATE) is the socket paused and what was already read queued.
    const service = new LogicalReplicationService(this.o.clientConfig, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: false },
    });
    this.service = service;
    // A reader per connection: relation messages are sent again on every new one.
    const plugin = new MappedPgoutputPlugin(
      {
        protoVersion: 1,
        publicationNames: [this.o.publication],
        ...(this.o.messages ? { messages: true } : {}),
      },
      new PgoutputReader(this.o.columns),
    );

    service.on('error', (err: Error) => {
      this.failure ??= err;
    });
    service.on('data', (_lsn: string, msg: ChangeMessage) => {
      if (!this.taking || this.failure !== undefined) return;
      if (this.waiting) this.queue.push(msg);
      else this.handle(msg);
    });
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      if (!this.waiting && this.taking) this.o.onIdlePosition(parseLsn(lsn));
      if (shouldRespond) this.sendStatus(true);
    });
    service.on('start', () => {
      this.o.logger.info({ slot: this.o.slot }, 'replication stream started');
      this.o.onStart?.();
      if (!this.socket()) {
        // Only an upgrade of the (pinned) library can cause this: backpressure would not hold.
        this.o.logger.error(
          { slot: this.o.slot },
          'cannot pause the replication socket: memory is not bounded under backpressure',
        );
      }
      // stop() came while the library was still connecting, before it had a client to end: its
      // connect went on regardless. End this stream now rather than stream on unread.
      if (this.closing.signal.aborted) void service.stop().catch(() => {});
    });
    this.statusTimer = setInterval(() => this.sendStatus(true), this.o.statusIntervalMs ?? 5000);
    try {
      // 0/0: the server starts at the slot's confirmed_flush_lsn. Never pass the last *received*
      // position: transactions before it that were not confirmed would be skipped.
      // stop() also ends the wait: ending a pg client that is still connecting leaves its connect()
      // pending forever (pg 8), and with it the library's subscribe().
      const closing = this.closing.signal;
      const stopped = new Promise<void>((resolve) => {
        if (closing.aborted) resolve();
        else closing.addEventListener('abort', () => resolve(), { once: true });
      });
      const subscribed = service.subscribe(plugin, this.o.slot, '0/0');
      subscribed.catch(() => {}); // once stop() won the race, its late failure is expected
      await Promise.race([subscribed, stopped]);
    } catch (err) {
      this.failure ??= err;
    } finally {
      clearInterval(this.statusTimer);
      await service.stop().catch(() => {});
    }
    if (this.failure !== undefined && this.taking) throw this.failure;
  }

  /** Handles one message; if the handler has to wait, reading stops until it and the queue are done. */
  private handle(msg: ChangeMessage): void {
    let pending: Promise<void> | void;
    try {
      pending = this.o.onMessage(msg);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (!pending) return;
    this.waiting = true;
    this.socket()?.pause();
    void pending.then(
      () => this.handleQueued(),
      (err: unknown) => this.fail(err),
    );
  }

  private async handleQueued(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        if (!this.taking || this.failure !== undefined) return;
        const msg = this.queue.shift() as ChangeMessage;
        // Most messages are handled at once: awaiting them too cost a microtask per row.
        const pending = this.o.onMessage(msg);
        if (pending) await pending;
      }
      this.waiting = false;
      this.socket()?.resume();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    this.queue = [];
    void this.service?.stop().catch(() => {});
  }

  /**
   * The replication connection's socket. The library keeps it private but pauses it the same way
   * for its own flow control; pausing is what stops the server's data from piling up in memory.
   */
  private socket(): { pause(): void; resume(): void } | undefined {
    return (this.service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })
      ?._connection?.stream;
  }

  /** Messages read while a handler waits, not handled yet (bounded: the socket is paused). */
  get queued(): number {
    return this.queue.length;
  }

  /** Sends the confirmed position (if it moved, or always when `force`). */
  sendStatus(force = false): void {
    const lsn = this.o.confirmed();
    if (!this.service || (!force && lsn === this.lastSent) || lsn === 0n) return;
    this.lastSent = lsn;
    // The library reports lsn+1 as flushed: pass one less to confirm exactly `lsn`.
    void this.service.acknowledge(formatLsn(lsn - 1n)).catch(() => {});
  }

  /** Stops reading; handlers in progress finish, queued messages are dropped (not confirmed). */
  async stop(): Promise<void> {
    this.closing.abort();
    this.sendStatus(true);
    await this.service?.stop();
  }
}
