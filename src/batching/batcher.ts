/**
 * Debounced, coalescing buffers (docs/design.md, "Coalescing and batching") and backpressure ("Positions"). One buffer per
 * source holds at most one entry per source row key. A source's buffer is flushed when it holds
 * `maxBatchSize` keys, when no change arrived for `debounceMs`, or when its oldest change is
 * `maxWaitMs` old; a flush hands all of a source's entries to the dispatcher at once, so a later
 * change of one operation type can never overtake an earlier change of another.
 */
import type { Config } from '../config/types.js';
import type { SourceChange } from '../domain/change.js';
import { mergeChange, newEntry, type Entry, type Holder } from './coalesce.js';

/** The stage after the buffers: sends a flushed set of entries, calling `done` as entries finish. */
export interface FlushSink {
  /**
   * `open`: the transactions whose COMMIT had not been read when the batcher made this flush. The
   * guard decides by it, not by what it finds when the flush reaches it (the COMMIT may be read
   * by then, while later flushes of the same transaction are still on their way).
   */
  dispatch(source: string, entries: Entry[], open: ReadonlySet<Holder>): Promise<void>;
  /** Entries it keeps waiting for a transaction's COMMIT (the removal guard): a drain leaves them. */
  readonly waiting?: number;
  /** The session ended: forget what waits for a COMMIT that will not come in it. */
  forgetOpen?(): void;
  /** Let what waits for the open transaction's COMMIT go now (a TRUNCATE within it). */
  settleOpen?(): void;
}

class SourceBuffer {
  entries = new Map<string, Entry>();
  /** When the latest change arrived: the debounce timer re-arms itself until quiet. */
  lastAt = 0;
  debounce: NodeJS.Timeout | undefined;
  maxWait: NodeJS.Timeout | undefined;
}

export class Batcher {
  private readonly buffers = new Map<string, SourceBuffer>();
  private buffered = 0;
  private inflight = 0;
  private chain: Promise<void> = Promise.resolve();
  private roomWaiters: Array<() => void> = [];
  private drainWaiters: Array<() => void> = [];
  private failure: unknown;
  /** Transactions flushed before their COMMIT was read, and the sources they were flushed from. */
  private readonly openFlushed = new Map<Holder, Set<string>>();

  constructor(
    private readonly options: Config['batching'],
    private readonly sink: FlushSink,
    private readonly onLoad: (buffered: number, inflight: number) => void = () => {},
  ) {}

  /** Entries held in buffers plus entries handed to the dispatcher and not yet finished. */
  get load(): number {
    return this.buffered + this.inflight;
  }

  /**
   * Buffers a change of a source row: `lsn` is its transaction's commit position, `seq` its index
   * among the transaction's row changes. Synchronous: call `waitForRoom` between changes.
   */
  add(
    source: string,
    change: SourceChange,
    lsn: bigint,
    seq: number,
    commitTime: Date,
    holder: Holder,
  ): void {
    let buf = this.buffers.get(source);
    if (!buf) {
      buf = new SourceBuffer();
      this.buffers.set(source, buf);
    }
    const existing = buf.entries.get(change.key.text);
    if (existing) {
      mergeChange(existing, change, lsn, seq, commitTime, holder);
    } else {
      buf.entries.set(change.key.text, newEntry(change, lsn, seq, commitTime, holder));
      this.buffered += 1;
      if (buf.entries.size === 1) {
        buf.maxWait = setTimeout(() => this.flush(source), this.options.maxWaitMs);
      }
    }
    if (buf.entries.size >= this.options.maxBatchSize) {
      this.flush(source);
      return;
    }
    // Re-arming a timer on every change is costly at 100k changes/s: note the time instead and
    // let the timer, when it fires, wait for the rest of the quiet period.
    buf.lastAt = performance.now();
    if (!buf.debounce) this.armDebounce(source, buf, this.options.debounceMs);
  }

  private armDebounce(source: string, buf: SourceBuffer, delayMs: number): void {
    buf.debounce = setTimeout(() => {
      buf.debounce = undefined;
      const quietFor = performance.now() - buf.lastAt;
      if (quietFor + 1 < this.options.debounceMs)
        this.armDebounce(source, buf, this.options.debounceMs - quietFor);
      else this.flush(source);
    }, delayMs);
  }

  /**
   * A transaction's COMMIT was read: every source it was flushed from before is flushed again (even
   * empty). That flush is the first to say the transaction is complete, and it reaches the guard
   * after every earlier flush of it (flushes are handed on in order), so the guard judges the
   * transaction with every change of it in hand.
   */
  committed(tx: Holder): void {
    const sources = this.openFlushed.get(tx);
    if (!sources) return;
    this.openFlushed.delete(tx);
    for (const source of sources) this.flush(source, true);
  }

  /** Hands a source's buffer to the dispatcher (in flush order); with `evenEmpty`, an empty one too. */
  flush(source: string, evenEmpty = false): void {
    const buf = this.buffers.get(source);
    if (!buf || buf.entries.size === 0) {
      if (evenEmpty) this.dispatch(source, []);
      return;
    }
    clearTimeout(buf.debounce);
    clearTimeout(buf.maxWait);
    buf.debounce = undefined;
    buf.maxWait = undefined;
    const entries = [...buf.entries.values()];
    buf.entries = new Map();
    this.buffered -= entries.length;
    this.inflight += entries.length;
    this.report();
    this.dispatch(source, entries);
  }

  private dispatch(source: string, entries: Entry[]): void {
    let last: Holder | undefined;
    for (const e of entries) {
      const tx = e.holder;
      if (tx === last || tx?.committed !== false) continue;
      last = tx;
      const sources = this.openFlushed.get(tx) ?? new Set<string>();
      sources.add(source);
      this.openFlushed.set(tx, sources);
    }
    // A snapshot: what is open now, whenever the flush reaches the guard.
    const open = new Set(this.openFlushed.keys());
    this.enqueue(() => this.sink.dispatch(source, entries, open));
  }

  /** Steps reach the sink one at a time, in the order they were asked for. */
  private enqueue(step: () => Promise<void> | void): void {
    this.chain = this.chain.then(step).catch((err: unknown) => {
      this.failure ??= err;
      for (const w of this.roomWaiters.splice(0)) w();
    });
  }

  /** Flushes every buffer now (backpressure, shutdown). */
  flushAll(): void {
    for (const source of this.buffers.keys()) this.flush(source);
  }

  /**
   * The session ended: entries waiting for its transactions' COMMIT are forgotten (read again),
   * those in the guard now and those of flushes still on their way to it.
   */
  forgetOpen(): void {
    this.openFlushed.clear();
    this.sink.forgetOpen?.();
    this.enqueue(() => this.sink.forgetOpen?.());
  }

  /**
   * Drops what the buffers hold and have not handed on (a lost replication stream: the server sends
   * those changes again, none of them confirmed). Requests in flight go on. Returns the entries dropped.
   */
  discardBuffered(): number {
    let n = 0;
    for (const buf of this.buffers.values()) {
      clearTimeout(buf.debounce);
      clearTimeout(buf.maxWait);
      buf.debounce = undefined;
      buf.maxWait = undefined;
      n += buf.entries.size;
      buf.entries = new Map();
    }
    this.buffered -= n;
    this.done(0);
    return n;
  }

  /** The dispatcher reports entries whose outcome is stored. */
  done(n: number): void {
    this.inflight -= n;
    this.report();
    if (this.load < this.options.maxBufferedRows) for (const w of this.roomWaiters.splice(0)) w();
    if (this.load <= (this.sink.waiting ?? 0)) for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Whether buffers and requests hold `maxBufferedRows` entries (callers then `waitForRoom`). */
  get full(): boolean {
    return this.load >= this.options.maxBufferedRows || this.failure !== undefined;
  }

  /**
   * Resolves when buffers and requests hold fewer than `maxBufferedRows` entries. While it waits,
   * the stream is not read (the library's flow control is off: source/stream.ts pauses the socket while
   * the handler's promise is pending), so memory stays bounded.
   */
  async waitForRoom(): Promise<void> {
    this.throwIfFailed();
    if (this.load < this.options.maxBufferedRows) return;
    this.flushAll();
    while (this.load >= this.options.maxBufferedRows) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      this.throwIfFailed();
    }
  }

  /**
   * Flushes everything and resolves when every entry has its outcome stored, but those waiting for
   * the COMMIT of a transaction still being read (the removal guard's): they cannot finish before
   * the stream goes on, unless `settleOpen` lets them go now (a TRUNCATE within that transaction).
   */
  async drain(o: { settleOpen?: boolean } = {}): Promise<void> {
    this.flushAll();
    // Dispatches run in order: the sink counts an entry as waiting only once its flush reached it.
    await this.chain;
    if (o.settleOpen) this.sink.settleOpen?.();
    while (this.load > (o.settleOpen ? 0 : (this.sink.waiting ?? 0))) {
      this.throwIfFailed();
      await new Promise<void>((resolve) => {
        this.drainWaiters.push(resolve);
        this.roomWaiters.push(resolve);
      });
    }
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private report(): void {
    this.onLoad(this.buffered, this.inflight);
  }
}
