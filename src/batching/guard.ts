/**
 * The removal guard (docs/operations.md, "Mass removals wait for a person"). Between planning and
 * sending, it counts a flush's entries whose calls remove groups (a `delete` part). A transaction,
 * or a flush window, that would remove groups from more of a source's rows than the source's limit
 * (`guard.maxRemovals`, src/config/guard.ts) is held: those entries are recorded `held` and nothing
 * of them is sent; later changes of a held key are held with it, until an operator decides.
 *
 * A transaction is judged whole. With pgoutput's protocol 1 a transaction arrives after it
 * committed, but a large one is flushed in parts before its COMMIT is read; so the removals of a
 * transaction that was open when the batcher made their flush (`open`, the batcher's snapshot: by
 * the time a flush gets here the COMMIT may have been read while later flushes of the transaction
 * are still on their way) wait here, with whatever shares a key or a customer with them so nothing
 * overtakes them, until a flush made after its COMMIT comes, or until they exceed the limit. At its
 * COMMIT the batcher flushes again every source the transaction was flushed from, and flushes reach
 * the guard in order, so that flush finds every change of it in hand. What waits holds its
 * transaction (nothing is confirmed past it) and counts as buffered; at most `capacity` entries
 * wait (all sources together), and a transaction whose removals need more room is held. The other
 * entries go on at once: only the keys a mass removal touches wait.
 */
import type { Logger } from 'pino';
import { describeLimit, removalLimit, type RemovalLimit } from '../config/guard.js';
import type { Holder } from '../domain/types.js';
import type { Entry, NetEffect } from './coalesce.js';
import {
  byTransaction,
  heldReason,
  isOpen,
  mark,
  removes,
  touches,
  windowOf,
  windowWords,
  type Item,
  type Limit,
} from './removals.js';

export { removes } from './removals.js';

/** An entry with its planned calls, as the dispatcher hands it over. */
export interface Planned {
  entry: Entry;
  effect: NetEffect;
}

/** How the guard's verdicts take effect (the dispatcher). */
export interface GuardSink {
  /** Sends one flush's (or one waiting group's) entries, in the order given. */
  send(source: string, items: Planned[]): Promise<void>;
  /** Records entries as held (reason null: a later change of a key held already). */
  hold(source: string, items: Planned[], reason: string | null): void;
  /** Forgets entries without an outcome: their transaction will be read again (a new session). */
  drop(items: Planned[]): void;
}

/** What the guard reads: held keys and the size of a source. */
export interface GuardState {
  heldKeys(source: string): Promise<Set<string>>;
  /** Which of these keys are held now. */
  stillHeld(source: string, keys: readonly string[]): Promise<Set<string>>;
  sourceRows(source: string): Promise<number>;
}

export interface GuardOptions {
  /** Each source's limit (its own `guard`, else the top level's). */
  limits: ReadonlyMap<string, RemovalLimit>;
  state: GuardState;
  sink: GuardSink;
  /** Entries that may wait for their transaction's end (half of maxBufferedRows). */
  capacity: number;
  logger: Logger;
  /** Told of each decision to hold (metrics, logs). */
  onHeld?: (source: string, rows: number, reason: string) => void;
  /** How old a source's row count may get. */
  countMaxAgeMs?: number;
}

type Verdict = Item['verdict'];

interface SourceState {
  held: Set<string>;
  rows: { n: number; at: number } | undefined;
  counting: Promise<void> | undefined;
  /** Entries waiting, in flush order. */
  queue: Item[];
}

export class RemovalGuard {
  private readonly sources = new Map<string, Promise<SourceState>>();
  private readonly settled = new Map<string, SourceState>();
  /** Transactions held (their later entries are held at once), with the reason. */
  private readonly heldTx = new WeakMap<Holder, string>();
  /** Removals of a transaction let go before its end (settleOpen): they count for it still. */
  private readonly let = new WeakMap<Holder, number>();
  private flushes = 0;
  private pumping: Promise<void> = Promise.resolve();

  constructor(private readonly o: GuardOptions) {}

  /**
   * Entries waiting, for their transaction's COMMIT or behind such entries: a drain does not wait
   * for them (in a session that ends, that COMMIT never comes; the transaction is read again).
   */
  get waiting(): number {
    return [...this.settled.values()].reduce((n, s) => n + s.queue.length, 0);
  }

  /** A source's entries queued here, not sent yet, in flush order (./resolve.ts starts from them). */
  queued = (source: string): readonly Item[] => this.settled.get(source)?.queue ?? [];

  /** Judges a flush (`open`: its transactions still open when it was made): send, hold or wait. */
  async judge(source: string, planned: readonly Planned[], open: ReadonlySet<Holder>): Promise<void> {
    const s = await this.state(source);
    const flush = ++this.flushes;
    await this.confirmHeld(source, s, planned);
    // Nothing waits or removes (a snapshot, adds): sent as it came, with no item per entry.
    const plain = s.queue.length === 0 && planned.every((p) => this.first(s, p) === 'send');
    const items: Item[] = plain ? [] : planned.map((p) => ({ ...p, verdict: this.first(s, p), flush }));
    const waits = (i: Item) => i.verdict === 'wait';
    const limit = await this.limitOf(source, s, items.some(waits) || s.queue.some(waits));

    // Each transaction (with its entries waiting already), then what the window's transactions
    // still send together: many small transactions can make a mass removal too.
    const removals = items.filter((i) => i.verdict === 'wait');
    for (const [tx, own] of byTransaction(removals)) this.judgeTx(source, s, limit, tx, own, open);
    const rest = removals.filter((i) => i.verdict === 'send' || i.verdict === 'wait');
    if (limit !== null && rest.length > limit.n) {
      const reason = heldReason(source, rest.length, limit, windowOf(rest));
      for (const i of rest) i.verdict = { hold: reason };
      for (const i of rest) if (i.entry.holder) this.heldTx.set(i.entry.holder, reason);
      this.o.onHeld?.(source, rest.length, reason);
    }
    this.decideCommitted(source, s, limit, open);
    this.route(source, s, items, plain ? planned.slice() : []);
    await this.pumping;
  }

  /** An operator decided about these keys (approved or rejected): they are no longer held. */
  async release(source: string, keys: Iterable<string>): Promise<void> {
    const s = await this.state(source);
    for (const k of keys) s.held.delete(k);
  }

  /** Whether a key of a source is held now. */
  async isHeld(source: string, key: string): Promise<boolean> {
    return (await this.state(source)).held.has(key);
  }

  /**
   * Lets what waits for an open transaction go now, as if it ended here: a TRUNCATE within it must
   * find its earlier changes' outcomes stored. Those removals still count for the transaction.
   */
  settleOpen(): void {
    for (const [source, s] of this.settled) {
      for (const i of s.queue) {
        if (i.verdict !== 'wait') continue;
        i.verdict = 'send';
        const tx = i.entry.holder;
        if (tx) this.let.set(tx, (this.let.get(tx) ?? 0) + 1);
      }
      this.drainHead(source, s);
    }
  }

  /** The session ended: entries of transactions whose COMMIT never came are forgotten (read again). */
  forgetOpen(): void {
    for (const [source, s] of this.settled) {
      const open = s.queue.filter((i) => isOpen(i.entry));
      if (open.length === 0) continue;
      s.queue = s.queue.filter((i) => !isOpen(i.entry));
      this.o.sink.drop(open);
      this.drainHead(source, s);
    }
  }

  /**
   * The held set is a cache: an operator may have settled keys without this process (a rejection
   * by the command while it runs, an approval that ran in-process, SQL). Keys of this flush found in
   * it are looked up, and those no longer held leave it.
   */
  private async confirmHeld(source: string, s: SourceState, planned: readonly Planned[]): Promise<void> {
    if (s.held.size === 0) return;
    const keys = planned.filter((p) => s.held.has(p.entry.key.text)).map((p) => p.entry.key.text);
    if (keys.length === 0) return;
    const still = await this.o.state.stillHeld(source, keys);
    for (const k of keys) if (!still.has(k)) s.held.delete(k);
  }

  /** The verdict an entry gets before counting: held key, pre-judged, approved, or a removal to count. */
  private first(s: SourceState, p: Planned): Verdict {
    const e = p.entry;
    if (e.hold !== undefined) {
      s.held.add(e.key.text);
      return { hold: e.hold };
    }
    if (e.approved) return 'send';
    // A change the platform cannot see (an unmapped column) is nothing to hold; it stores nothing.
    if (p.effect.kind === 'skipped' && p.effect.unchanged) return 'send';
    if (s.held.has(e.key.text)) return { hold: null };
    if (!removes(p.effect)) return 'send';
    const txHeld = e.holder ? this.heldTx.get(e.holder) : undefined;
    if (txHeld !== undefined) return { hold: txHeld };
    return 'wait';
  }

  /** One transaction's removals in this flush, with those of it that wait already. */
  private judgeTx(
    source: string,
    s: SourceState,
    limit: Limit | null,
    tx: Holder | undefined,
    own: Item[],
    open: ReadonlySet<Holder>,
  ): void {
    const complete = tx === undefined || !open.has(tx);
    const waiting = tx ? s.queue.filter((i) => i.verdict === 'wait' && i.entry.holder === tx) : [];
    const total = (tx ? (this.let.get(tx) ?? 0) : 0) + waiting.length + own.length;
    if (limit !== null && total > limit.n) {
      const all = [...waiting, ...own];
      const reason = heldReason(source, total, limit, windowOf(all), !complete);
      for (const i of all) i.verdict = { hold: reason };
      if (tx) this.heldTx.set(tx, reason);
      this.o.onHeld?.(source, total, reason);
      return;
    }
    // Complete and within the limit: sent. Otherwise it waits for its COMMIT (route() queues it).
    if (complete || limit === null) for (const i of own) i.verdict = 'send';
  }

  /**
   * Carries out what is decided, except entries that must wait: those of a transaction not yet
   * complete, and any sharing a key or a customer with an entry already waiting (order per key).
   */
  private route(source: string, s: SourceState, items: Item[], send: Planned[]): void {
    const waitingKeys = new Set<string>();
    const waitingIds = new Set<string>();
    for (const i of s.queue) mark(i, waitingKeys, waitingIds);
    const now: Item[] = [];
    for (const i of items) {
      if (i.verdict === 'wait' || touches(i, waitingKeys, waitingIds)) {
        s.queue.push(i);
        mark(i, waitingKeys, waitingIds);
      } else now.push(i);
    }
    this.drainHead(source, s);
    // The capacity is for all sources together (what waits counts as buffered): this one first.
    for (const [name, st] of [[source, s] as const, ...this.settled]) {
      if (this.waiting <= this.o.capacity) break;
      this.overflow(name, st);
      this.drainHead(name, st);
    }
    this.execute(source, now, send);
  }

  /** More waits than fits: the waiting transactions' removals are held (they cannot be judged whole). */
  private overflow(source: string, s: SourceState): void {
    const waiting = s.queue.filter((i) => i.verdict === 'wait');
    if (waiting.length === 0) return;
    const reason = `a transaction of source ${source} removes groups from more rows than can wait in memory for its end (${this.o.capacity}: half of batching.maxBufferedRows)${windowWords(windowOf(waiting))}; approve it to let it through`;
    for (const i of waiting) {
      i.verdict = { hold: reason };
      if (i.entry.holder) this.heldTx.set(i.entry.holder, reason);
    }
    this.o.onHeld?.(source, waiting.length, reason);
  }

  /** Sends (in order) and holds decided entries (or sends `send`); held keys join the held set. */
  private execute(source: string, items: Item[], send: Planned[] = []): void {
    if (items.length === 0 && send.length === 0) return;
    const holds = new Map<string | null, Planned[]>();
    for (const i of items) {
      if (i.verdict === 'send') send.push({ entry: i.entry, effect: i.effect });
      else if (i.verdict !== 'wait') {
        const list = holds.get(i.verdict.hold) ?? [];
        list.push({ entry: i.entry, effect: i.effect });
        holds.set(i.verdict.hold, list);
      }
    }
    const st = this.settled.get(source);
    for (const list of holds.values()) for (const p of list) st?.held.add(p.entry.key.text);
    // One chain: a send waits for the sent position before it schedules, and nothing may pass it.
    this.pumping = this.pumping.then(async () => {
      for (const [reason, list] of holds) this.o.sink.hold(source, list, reason);
      if (send.length) await this.o.sink.send(source, send);
    });
  }

  /** Transactions whose COMMIT came before this flush are decided: their removals stayed within the limit. */
  private decideCommitted(
    source: string,
    s: SourceState,
    limit: Limit | null,
    open: ReadonlySet<Holder>,
  ): void {
    for (const [tx, own] of byTransaction(s.queue.filter((i) => i.verdict === 'wait'))) {
      if (tx && open.has(tx)) continue;
      // judgeTx holds a transaction the moment its removals exceed the limit; this re-checks.
      if (limit !== null && own.length > limit.n) this.judgeTx(source, s, limit, tx, [], open);
      else for (const i of own) i.verdict = 'send';
    }
  }

  /** Carries out the queue's decided head, flush by flush, up to the first entry still waiting. */
  private drainHead(source: string, s: SourceState): void {
    let end = 0;
    while (end < s.queue.length && (s.queue[end] as Item).verdict !== 'wait') end += 1;
    const ready = s.queue.splice(0, end);
    for (let i = 0; i < ready.length;) {
      let j = i;
      while (j < ready.length && (ready[j] as Item).flush === (ready[i] as Item).flush) j += 1;
      this.execute(source, ready.slice(i, j));
      i = j;
    }
  }

  private async state(source: string): Promise<SourceState> {
    let p = this.sources.get(source);
    if (!p) {
      p = this.o.state.heldKeys(source).then((held) => {
        const s: SourceState = { held, rows: undefined, counting: undefined, queue: [] };
        this.settled.set(source, s);
        return s;
      });
      this.sources.set(source, p);
      p.catch(() => this.sources.delete(source));
    }
    return p;
  }

  /**
   * The source's limit now. Its row count is read again when older than `countMaxAgeMs` (10 s), and
   * waited for: a snapshot or a bulk load may have just multiplied it. Only flushes that remove ask.
   */
  private async limitOf(source: string, s: SourceState, removals: boolean): Promise<Limit | null> {
    const kind = this.o.limits.get(source) ?? { kind: 'default' };
    if (kind.kind === 'off' || !removals) return null;
    if (!s.rows || Date.now() - s.rows.at > (this.o.countMaxAgeMs ?? 10_000)) {
      s.counting ??= this.o.state
        .sourceRows(source)
        .then((n) => void (s.rows = { n, at: Date.now() }))
        .catch((err: unknown) =>
          this.o.logger.warn({ err, source }, 'counting a source for its guard failed'),
        )
        .finally(() => (s.counting = undefined));
      await s.counting;
    }
    const rows = s.rows?.n ?? 0;
    const n = removalLimit(kind, rows) ?? Number.MAX_SAFE_INTEGER;
    return { n, rows, words: describeLimit(kind, rows) };
  }
}
