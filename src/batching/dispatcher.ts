/**
 * Flushed entries -> ordered requests. For each flush of a source: resolve what the WAL did not carry
 * (./resolve.ts), plan each key's calls (./coalesce.ts), let the removal guard judge them
 * (./guard.ts: mass removals are held), record the sent position, and schedule requests of at
 * most `maxBatchSize` rows per operation (deletes, then adds) on the keys and customers they touch,
 * later flushes' rows joining those still waiting (./batches.ts). Delivery (sending, retries,
 * bisection, outcomes) is the delivery unit's; the dispatcher releases each entry to the position
 * tracker once every part of it has its outcome stored.
 */
import type { Logger } from 'pino';
import type { RemovalLimit } from '../config/guard.js';
import type { Holder, OptType } from '../domain/types.js';
import { errorMessage } from '../errors.js';
import { planFlush, releaseEntry, type Entry, type NetEffect } from './coalesce.js';
import { RemovalGuard, type GuardState, type Planned } from './guard.js';
import {
  resolveLookups,
  resolveQueued,
  resolveToast,
  resolveUnknown,
  resolveUnsettled,
  type SentState,
  type SourceRuntime,
} from './resolve.js';

export type { SentState, SourceRuntime } from './resolve.js';
import {
  requestRows,
  type Deliverer,
  type DeliveryRow,
  type KeyChange,
  type LocalOutcome,
} from '../delivery/requests.js';
import { RequestBatches } from './batches.js';
import { keyLane } from './lanes.js';
import { Resources, type OrderedScheduler } from './scheduler.js';

/** How far each source's changes may have reached the platform (src/status/sent-mark.ts). */
export interface SentPosition {
  isFresh(source: string, lsn: bigint, seq: number): boolean;
  /** Resolves once the source's changes up to this position are durably recorded as possibly sent. */
  cover(source: string, lsn: bigint, seq: number): Promise<void>;
}

/** An entry on its way: its stored change, and how many of its parts are still unanswered. */
interface Flight extends KeyChange {
  entry: Entry;
  partsLeft: number;
}

export interface DispatcherOptions {
  maxBatchSize: number;
  sent: SentPosition;
  sources: ReadonlyMap<string, SourceRuntime>;
  delivery: Deliverer;
  state: SentState;
  scheduler: OrderedScheduler;
  logger: Logger;
  /** Called with the number of entries whose outcome is stored (or that need none). */
  onDone(n: number): void;
  /** Changes that changed nothing the platform sees (a key's whole window): nothing sent or stored. */
  onUnchanged?(source: string, changes: number): void;
  /** Aborts retries on a forced shutdown. */
  signal?: AbortSignal;
  /** An outcome could not be stored (or another unexpected failure): the bridge must stop. */
  onFatal(err: unknown): void;
  /**
   * The removal guard's state and where held rows are recorded; with it, mass removals are held
   * (./guard.ts). `limits` per source, `capacity` the entries that may wait for a COMMIT.
   */
  held?: GuardState & {
    hold(
      source: string,
      rows: ReadonlyArray<{ rowKey: string; lsn: bigint; committedAt: Date }>,
      reason: string | null,
    ): Promise<void>;
  };
  limits?: ReadonlyMap<string, RemovalLimit>;
  capacity?: number;
  /** Rows recorded held (metrics). */
  onHeld?(source: string, rows: number): void;
}

export class Dispatcher {
  /** The removal guard, when the dispatcher has one (`held`): an operator's decisions reach it. */
  readonly guard: RemovalGuard | undefined;
  private readonly bySource = new Map<string, RequestBatches>();

  constructor(private readonly o: DispatcherOptions) {
    this.guard = o.held
      ? new RemovalGuard({
          limits: o.limits ?? new Map(),
          state: o.held,
          capacity: o.capacity ?? 5000,
          logger: o.logger,
          sink: {
            send: (source, items) => this.send(source, items).catch((err: unknown) => this.fatal(err)),
            hold: (source, items, reason) => this.hold(source, items, reason),
            drop: (items) => this.drop(items),
          },
          onHeld: (source, rows, reason) =>
            o.logger.warn({ source, rows, reason }, 'mass removal held for an operator'),
        })
      : undefined;
  }

  /** `open`: the transactions whose COMMIT had not been read when the batcher made this flush. */
  async dispatch(sourceName: string, entries: Entry[], open: ReadonlySet<Holder>): Promise<void> {
    const rt = this.o.sources.get(sourceName);
    if (!rt) throw new Error(`unknown source ${sourceName}`);
    // What the WAL did not carry (./resolve.ts).
    const ctx = { rt, scheduler: this.o.scheduler, state: this.o.state };
    // A key's unsent change waiting in the guard comes first; a key left failed then starts from
    // its stored payload too (both are states the platform may hold).
    if (this.guard) resolveQueued(rt.config.mode, entries, this.guard.queued(sourceName));
    await resolveUnsettled(ctx, entries);
    await resolveLookups(ctx, entries);
    await resolveToast(ctx, entries);
    await resolveUnknown(ctx, entries);

    // A key whose first buffered change lies past the sent position was never sent (not even by an
    // earlier run): only then may its window be coalesced as if the platform were at `before`.
    const effects = planFlush(rt.config.mode, entries, (e) =>
      this.o.sent.isFresh(sourceName, e.firstLsn, e.firstSeq),
    );
    const planned = entries.map((entry, i) => ({ entry, effect: effects[i] as NetEffect }));
    // Mass removals wait for a person (./guard.ts): the guard sends, holds, or keeps waiting.
    if (this.guard) await this.guard.judge(sourceName, planned, open);
    else await this.send(sourceName, planned);
  }

  /** Entries of a source's transactions still waiting for their COMMIT in the removal guard. */
  get waiting(): number {
    return this.guard?.waiting ?? 0;
  }

  /** The session ended: what waits for a COMMIT that will not come in it is forgotten. */
  forgetOpen(): void {
    this.guard?.forgetOpen();
    // Outcomes stored before the next session by another bridge or a command count too.
    this.o.state.forgetUnsettled?.();
  }

  /** What waits for the open transaction goes now (a TRUNCATE within it). */
  settleOpen(): void {
    this.guard?.settleOpen();
  }

  /** Sends planned entries: outcomes decided locally, then requests by operation (GuardSink). */
  async send(sourceName: string, planned: readonly Planned[]): Promise<void> {
    const rt = this.o.sources.get(sourceName);
    if (!rt) throw new Error(`unknown source ${sourceName}`);
    const local: LocalOutcome[] = [];
    const sending: Array<{
      change: Flight;
      parts: NonNullable<Extract<NetEffect, { kind: 'send' }>['parts']>;
    }> = [];
    let last: Entry | undefined;
    let unchanged = 0;
    let unchangedChanges = 0;
    for (const { entry, effect } of planned) {
      if (effect.kind === 'skipped' && effect.unchanged) {
        // Nothing to send or store: the key's last outcome stays; its transactions may be confirmed.
        releaseEntry(entry);
        unchanged += 1;
        unchangedChanges += entry.changes;
        continue;
      }
      if (effect.kind !== 'send') {
        const flight = this.flight(entry, 1);
        local.push({
          change: flight,
          op: entry.after ? 'add' : 'delete',
          status: effect.kind,
          error: effect.reason,
        });
        continue;
      }
      if (!last || entry.lsn > last.lsn || (entry.lsn === last.lsn && entry.seq > last.seq)) last = entry;
      const flight = this.flight(entry, effect.parts.length);
      flight.failure = effect.failure;
      sending.push({ change: flight, parts: effect.parts });
    }
    if (unchanged) {
      this.o.onDone(unchanged);
      this.o.onUnchanged?.(sourceName, unchangedChanges);
    }

    // Durable before anything leaves: a crash from here on replays these changes as maybe-sent.
    if (last) await this.o.sent.cover(sourceName, last.lsn, last.seq);
    if (local.length) this.scheduleLocal(rt, local);
    // Requests of up to maxBatchSize rows, later flushes' rows joining them while they wait.
    this.batches(rt).add(requestRows(rt.config.mode, sending));
  }

  /** Records entries as held, in order with their keys' requests (GuardSink). */
  hold(sourceName: string, planned: readonly Planned[], reason: string | null): void {
    const rt = this.o.sources.get(sourceName);
    const held = this.o.held;
    if (!rt || !held) return;
    const flights = planned.map((p) => this.flight(p.entry, 1));
    const resources = new Resources();
    const lane = keyLane(rt.config.name);
    for (const f of flights) resources.add(lane, f.rowKey);
    void this.o.scheduler
      .schedule(
        resources,
        async () => {
          await held.hold(sourceName, flights, reason);
          this.o.onHeld?.(sourceName, flights.length);
          this.finish(flights);
        },
        { direct: true },
      )
      .catch((err: unknown) => this.fatal(err));
  }

  /** Forgets entries without an outcome (GuardSink): their transaction is read again. */
  drop(planned: readonly Planned[]): void {
    for (const p of planned) releaseEntry(p.entry);
    if (planned.length) this.o.onDone(planned.length);
  }

  private flight(entry: Entry, parts: number): Flight {
    return {
      entry,
      partsLeft: parts,
      rowKey: entry.key.text,
      lsn: entry.lsn,
      committedAt: entry.commitTime,
      priorAttempts: 0,
    };
  }

  /** Stores outcomes decided locally (skipped, unmappable rows), in order with the keys' requests. */
  private scheduleLocal(rt: SourceRuntime, local: LocalOutcome[]): void {
    const resources = new Resources();
    const keys = keyLane(rt.config.name);
    for (const l of local) resources.add(keys, l.change.rowKey);
    void this.o.scheduler
      .schedule(
        resources,
        async () => {
          await this.o.delivery.record(rt.config.name, local);
          this.finish(local.map((l) => l.change as Flight));
        },
        { direct: true },
      )
      .catch((err: unknown) => this.fatal(err));
  }

  private batches(rt: SourceRuntime): RequestBatches {
    let b = this.bySource.get(rt.config.name);
    if (!b) {
      b = new RequestBatches(rt.config.name, {
        scheduler: this.o.scheduler,
        maxBatchSize: this.o.maxBatchSize,
        deliver: (op, rows) => this.deliver(rt, op, rows),
      });
      this.bySource.set(rt.config.name, b);
    }
    return b;
  }

  private async deliver(rt: SourceRuntime, op: OptType, rows: DeliveryRow[]): Promise<void> {
    try {
      await this.o.delivery.deliver({ source: rt.config, op, rows, policy: 'daemon', signal: this.o.signal });
      this.release(rows);
    } catch (err) {
      this.fatal(err);
    }
  }

  private release(rows: readonly DeliveryRow[]): void {
    const finished: Flight[] = [];
    for (const r of rows) {
      for (const item of r.items) {
        const f = item.change as Flight;
        f.partsLeft -= 1;
        if (f.partsLeft === 0) finished.push(f);
      }
    }
    this.finish(finished);
  }

  private finish(flights: Flight[]): void {
    for (const f of flights) releaseEntry(f.entry);
    if (flights.length) this.o.onDone(flights.length);
  }

  private fatal(err: unknown): void {
    this.o.logger.error({ err: errorMessage(err) }, 'sending a batch or storing its outcomes failed');
    this.o.onFatal(err);
  }
}
