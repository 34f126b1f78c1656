/**
 * The demo's live progress: one line that is redrawn in place on a terminal, or printed every
 * few seconds when stdout is a pipe or a file (CI logs must stay readable). Row counts come from
 * `sync_status` itself, as an operator would read them; requests per second from the bridge's
 * `request` events; the lag is what the slot still holds back from the WAL insert position.
 */
import type pg from 'pg';
import { listen, type BridgeEvents } from '../domain/events.js';
import { formatBytes, formatCount } from '../util/format.js';
import { readSlot } from '../source/slot.js';
import { readCountsByStatus } from '../status/reads.js';

export interface ProgressOptions {
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  events: BridgeEvents;
  /** A connection of its own: the monitor must not wait behind the workload's statements. */
  db: pg.ClientBase;
  statusSchema: string;
  slot: string;
  /** Changed rows so far (the workload's count). */
  changes: () => number;
  /** Print interval when stdout is not a terminal. */
  lineIntervalMs?: number;
}

export interface StatusCounts {
  synced: number;
  failed: number;
  retrying: number;
  lagBytes: number;
}

const REQUEST_WINDOW_MS = 5000;

export class Progress {
  private readonly tty: boolean;
  private readonly requestTimes: number[] = [];
  private counts: StatusCounts = { synced: 0, failed: 0, retrying: 0, lagBytes: 0 };
  private phase = '';
  private phaseStart = Date.now();
  private phaseLength: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;
  private polling: Promise<void> | undefined;

  constructor(private readonly o: ProgressOptions) {
    this.tty = o.out.isTTY === true;
    listen(o.events, 'request', () => this.requestTimes.push(Date.now()));
  }

  /** Starts (or renames) the phase shown at the head of the line, e.g. "generating" for 60 s. */
  setPhase(name: string, lengthMs?: number): void {
    this.phase = name;
    this.phaseStart = Date.now();
    this.phaseLength = lengthMs;
    if (!this.timer) {
      const every = this.tty ? 500 : (this.o.lineIntervalMs ?? 5000);
      this.timer = setInterval(() => void this.tick(), every);
    }
  }

  /** Prints a message above the progress line. */
  note(message: string): void {
    this.clear();
    this.o.out.write(`${message}\n`);
    if (this.tty && this.timer) this.draw();
  }

  /** Stops refreshing; prints the final state once, headed `label` (or nothing without one). */
  async stop(label?: string): Promise<StatusCounts> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
    this.clear();
    if (label !== undefined) {
      await this.poll();
      this.o.out.write(`${this.line(label)}\n`);
    }
    return this.counts;
  }

  /** Latest counts from sync_status and the slot. */
  async poll(): Promise<StatusCounts> {
    try {
      const by = await readCountsByStatus(this.o.db, this.o.statusSchema);
      const slot = await readSlot(this.o.db, this.o.slot);
      this.counts = {
        synced: by.get('synced') ?? 0,
        failed: by.get('failed') ?? 0,
        retrying: by.get('retrying') ?? 0,
        lagBytes: Math.max(0, slot?.lagBytes ?? 0),
      };
    } catch {
      // The database may be going away (Ctrl-C); the last counts stay on screen.
    }
    return this.counts;
  }

  private async tick(): Promise<void> {
    if (this.polling) return;
    this.polling = this.poll().then(() => undefined);
    await this.polling;
    this.polling = undefined;
    if (!this.timer) return;
    if (this.tty) this.draw();
    else this.o.out.write(`${this.line()}\n`);
  }

  private requestsPerSecond(): number {
    const since = Date.now() - REQUEST_WINDOW_MS;
    while (this.requestTimes.length && (this.requestTimes[0] as number) < since) this.requestTimes.shift();
    return this.requestTimes.length / (REQUEST_WINDOW_MS / 1000);
  }

  /** The progress line: phase and time, changes made, outcomes, lag, request rate. */
  line(head?: string): string {
    const elapsed = Math.round((Date.now() - this.phaseStart) / 1000);
    const time = this.phaseLength === undefined ? `${elapsed}s` : `${elapsed}/${this.phaseLength / 1000}s`;
    const c = this.counts;
    return (
      `${head ?? `${this.phase} ${time}`} | changes ${formatCount(this.o.changes())}` +
      ` | synced ${formatCount(c.synced)}  failed ${formatCount(c.failed)}  retrying ${formatCount(c.retrying)}` +
      ` | slot lag ${formatBytes(c.lagBytes)} | ${this.requestsPerSecond().toFixed(1)} req/s`
    );
  }

  private draw(): void {
    const width = this.o.out.columns || 120; // 0 when the terminal reports no size
    this.o.out.write(`\r\x1b[2K${this.line().slice(0, Math.max(20, width - 1))}`);
    this.drawn = true;
  }

  private clear(): void {
    if (this.tty && this.drawn) this.o.out.write('\r\x1b[2K');
    this.drawn = false;
  }
}
