/**
 * What the WAL did not carry, resolved before a flush is planned (./dispatcher.ts): an old row not
 * in the WAL (`deleteLookup: state`, row mode without REPLICA IDENTITY FULL) is what the bridge last
 * recorded as sent; an update without its old row that leaves the state as stored is unchanged; an
 * unchanged TOAST value is read from the current row. The stored state is read once the key's
 * earlier requests have finished.
 */
import type { Image } from '../domain/change.js';
import { imageFromPayload } from '../tuzhan/rows.js';
import { addPassed, unchangedWindow, type Entry, type Window } from './coalesce.js';
import { sameTarget } from './parts.js';
import type { SourceConfig } from '../config/types.js';
import type { LastSent } from '../status/status-store.js';
import { keyLane } from './lanes.js';
import { Resources, type OrderedScheduler } from './scheduler.js';

/**
 * What the dispatcher uses of a source (mapping's SourceRuntime is one): its config, how a current
 * row reads as an image, and how to read it by key (unchanged TOAST values). Declared here, so the
 * dispatcher takes nothing from the stages before it.
 */
export interface SourceRuntime {
  config: SourceConfig;
  mapper: { image(row: Record<string, unknown>): Image };
  readRow(keyValues: Record<string, unknown>): Promise<Record<string, unknown> | null>;
}

/** What the bridge last recorded per key (`deleteLookup: state`). */
export interface SentState {
  lastSent(source: string, rowKeys: readonly string[]): Promise<Map<string, LastSent>>;
  /** Keys of a source whose last outcome may be failed or retrying (a superset). */
  unsettledKeys?(source: string): Promise<ReadonlySet<string>>;
  /** Reads them from the status table again (a session ended). */
  forgetUnsettled?(): void;
}

export interface ResolveContext {
  rt: SourceRuntime;
  scheduler: OrderedScheduler;
  state: SentState;
}

/**
 * A key whose earlier change still waits in the removal guard, unsent (its transaction was open when
 * that change's flush was made, ./guard.ts), starts from that change's new row: what sync_status
 * says was last sent is older, and read now it would plan this change from a row the key has left
 * (its delete would clear the old phone and leave the new one its groups). That new row is what
 * REPLICA IDENTITY FULL would have carried, and it is read as mapping reads an old row.
 */
export function resolveQueued(
  mode: SourceConfig['mode'],
  entries: Entry[],
  queued: ReadonlyArray<{ entry: Entry }>,
): void {
  if (queued.length === 0) return;
  const latest = new Map(queued.map((i) => [i.entry.key.text, i.entry]));
  for (const e of entries) {
    const earlier = e.before === 'lookup' || e.before === 'unknown' ? latest.get(e.key.text) : undefined;
    if (!earlier) continue;
    // As mapping reads an old row: one that could not be sent is what the bridge last sent (row mode).
    e.before = earlier.after?.error && mode === 'row' ? 'lookup' : earlier.after;
  }
}

/**
 * What was last stored for these keys, read once their earlier requests have finished: only then
 * is it what was last sent.
 */
async function settledLastSent(c: ResolveContext, pending: readonly Entry[]) {
  const keys = new Resources();
  const lane = keyLane(c.rt.config.name);
  for (const e of pending) keys.add(lane, e.key.text);
  await c.scheduler.settled(keys);
  return c.state.lastSent(
    c.rt.config.name,
    pending.map((e) => e.key.text),
  );
}

/** `deleteLookup: state`: the platform's state for a key is what the bridge last sent for it. */
export async function resolveLookups(c: ResolveContext, entries: Entry[]): Promise<void> {
  const pending = entries.filter((e) => e.before === 'lookup');
  if (pending.length === 0) return;
  const last = await settledLastSent(c, pending);
  for (const e of pending) {
    const l = last.get(e.key.text);
    e.before = l && l.op !== 'delete' && l.payload ? imageFromPayload(l.payload) : null;
  }
}

/**
 * A key whose last outcome failed (a delete the platform refused, with the rest of the change not
 * sent) or is still retrying: its customer may hold what its stored payload says, which the WAL's
 * old row no longer shows. Its window starts from the stored payload, so the change removes it
 * (docs/design.md, "A change refused in part"); the old row joins the states it passed through,
 * and the latest state is set.
 */
export async function resolveUnsettled(c: ResolveContext, entries: Entry[]): Promise<void> {
  const { rt, state } = c;
  if (!state.unsettledKeys) return;
  const unsettled = await state.unsettledKeys(rt.config.name);
  const pending = entries.filter((e) => e.before !== 'lookup' && unsettled.has(e.key.text));
  if (pending.length === 0) return;
  const last = await settledLastSent(c, pending);
  for (const e of pending) {
    const l = last.get(e.key.text);
    if (!l || (l.status !== 'failed' && l.status !== 'retrying') || l.op === 'delete' || !l.payload) continue;
    const stored = imageFromPayload(l.payload);
    const wal = e.before === 'unknown' || e.before === 'lookup' ? null : e.before;
    if (wal && sameTarget(wal, stored)) continue;
    if (wal) addPassed(e, wal);
    e.before = stored;
    // A key first stored by a failed or retrying request holds that request's payload, which the
    // platform may never have taken: its latest state is set even where it looks unchanged.
    e.restate = true;
  }
}

/**
 * An update without its old row in the WAL (REPLICA IDENTITY DEFAULT, key unchanged): when the new
 * state is what the bridge last stored for the key, nothing changed for the platform, and the
 * window is planned from that state (unchanged). Otherwise it stays `unknown`.
 */
export async function resolveUnknown(c: ResolveContext, entries: Entry[]): Promise<void> {
  // A re-sync's rows (`restate`) are set whatever they held, so never unchanged: they skip the
  // copy of the entry this test takes (a snapshot has one such row per source row).
  const pending = entries.filter(
    (e) =>
      e.before === 'unknown' && e.restate !== true && unchangedWindow({ ...(e as Window), before: e.after }),
  );
  if (pending.length === 0) return;
  const last = await settledLastSent(c, pending);
  for (const e of pending) {
    const l = last.get(e.key.text);
    if (!l || l.op === 'delete' || !l.payload) continue;
    const stored = imageFromPayload(l.payload);
    if (unchangedWindow({ before: stored, after: e.after })) e.before = stored;
  }
}

/** Unchanged TOAST groups the WAL did not carry: read the row's current value. */
export async function resolveToast(c: ResolveContext, entries: Entry[]): Promise<void> {
  const { rt } = c;
  const pending = entries.filter((e) => e.after && e.after.groups === null);
  for (const e of pending) {
    const row = await rt.readRow(e.key.values);
    const after = e.after as Image;
    if (row) {
      after.groups = rt.mapper.image(row).groups ?? [];
      continue;
    }
    // The row is gone (its delete is on its way): treat it as gone, clearing its identity. Without
    // an old tuple (`unknown`), the new tuple's identity is the old one: the startup check keeps
    // the identity columns in the replica identity, so an update without one did not change them.
    if (e.before === 'unknown') e.before = { identity: after.identity, groups: null };
    else addPassed(e, after);
    e.after = null;
  }
}
