/**
 * Coalescing (docs/design.md, "Coalescing and batching") made safe under replay. Per source row key a buffer keeps the
 * platform's state before the first buffered change (`before`), every other state the row passed
 * through while buffered (`passed`), and its latest state (`after`). At flush time the calls are
 * chosen so that, whatever prefix of these changes the platform already applied (delivery is at
 * least once: a lost answer, a dropped connection or a crash replays them), it ends where the
 * database is. Requests set state rather than apply diffs, per (customer, group) pair, and only on
 * the pairs this source put there:
 * - row mode: the row's groups are added to its customer; every pair the row held in the window
 *   and holds no longer (a group it lost, every group of an identity it left) is deleted;
 * - membership mode: the latest pair is added; every other pair the row passed through is deleted.
 * A key's changes that were never sent ("fresh", see `netEffect`) keep the coalescing table
 * (docs/design.md, "Coalescing and batching"): insert+update -> add(latest); insert+...+delete ->
 * nothing (skipped); update+update -> the groups gained and lost between the first and the last
 * state; update+delete -> delete; delete+insert -> the same. A window whose every state is the one
 * before it (`unchanged`) sends nothing and stores nothing, in both modes: whatever prefix of it the
 * platform applied, the platform is where it was. docs/design.md has the why.
 * Pure functions.
 */
import type { SourceMode } from '../config/types.js';
import type { Before, Image, RowKey, SourceChange } from '../domain/change.js';
import type { Holder, OptType } from '../domain/types.js';
import { identityText, membershipParts, rowParts, sameTarget, SKIP_UNCHANGED, type Part } from './parts.js';

export type { Part } from './parts.js';

export type { Holder } from '../domain/types.js';

export interface Entry {
  key: RowKey;
  before: Before;
  after: Image | null;
  /**
   * States between `before` and `after` (earlier `after`s that named another identity or group),
   * without duplicates; undefined while there is none. A replayed window may have sent any of them.
   */
  passed: Image[] | undefined;
  /** The row was gone (deleted, filtered out, unmappable) at some moment between `before` and `after`. */
  gap: boolean;
  /** Set the latest state even where it looks unchanged (see SourceChange.restate). */
  restate: boolean;
  /** The latest change's verdict for the removal guard, if it came with one (see SourceChange). */
  approved?: boolean;
  hold?: string;
  /**
   * Position of the first buffered change: its transaction's commit position and its index among
   * that transaction's row changes (the same on every replay). The window is fresh when nothing
   * of the source at or after it was ever sent.
   */
  firstLsn: bigint;
  firstSeq: number;
  /** Commit position, change index and commit time of the latest change. */
  lsn: bigint;
  seq: number;
  commitTime: Date;
  changes: number;
  /** The latest transaction waiting for this entry's outcome, and how many of its changes it holds. */
  holder: Holder | undefined;
  held: number;
  /** Earlier transactions waiting for it (the key changed in several before a flush), oldest first. */
  earlier: Array<[Holder, number]> | undefined;
}

/** Starts an entry for a key's first buffered change. */
export function newEntry(
  change: SourceChange,
  lsn: bigint,
  seq: number,
  commitTime: Date,
  holder: Holder,
): Entry {
  holder.hold(1);
  return {
    key: change.key,
    before: change.before,
    after: change.after,
    passed: undefined,
    gap: false,
    restate: change.restate === true,
    approved: change.approved,
    hold: change.hold,
    firstLsn: lsn,
    firstSeq: seq,
    lsn,
    seq,
    commitTime,
    changes: 1,
    holder,
    held: 1,
    earlier: undefined,
  };
}

/**
 * Folds a later change of the same key into its entry: the first `before` stays, `after` moves on,
 * and the state it leaves joins `passed` when it named another customer or group.
 */
export function mergeChange(
  entry: Entry,
  change: SourceChange,
  lsn: bigint,
  seq: number,
  commitTime: Date,
  holder: Holder,
): void {
  let after = change.after;
  // An unchanged TOAST value the server did not send is the value of the previous change.
  if (after && after.groups === null && entry.after && entry.after.groups !== null) {
    after = { ...after, groups: entry.after.groups };
  }
  const left = entry.after;
  if (!left || left.error) entry.gap = true;
  else if (!sameTarget(left, after)) addPassed(entry, left);
  entry.after = after;
  if (change.restate) entry.restate = true;
  entry.approved = change.approved;
  entry.hold = change.hold;
  entry.lsn = lsn;
  entry.seq = seq;
  entry.commitTime = commitTime;
  entry.changes += 1;
  holder.hold(1);
  if (entry.holder === holder) {
    entry.held += 1;
  } else {
    if (entry.holder) (entry.earlier ??= []).push([entry.holder, entry.held]);
    entry.holder = holder;
    entry.held = 1;
  }
}

/** Records a state the key passed through (once per identity and groups). */
export function addPassed(entry: Entry, image: Image): void {
  if (entry.passed === undefined) entry.passed = [image];
  else if (!entry.passed.some((p) => sameTarget(p, image))) entry.passed.push(image);
}

/** Releases every transaction the entry holds: its outcome is stored. */
export function releaseEntry(entry: Entry): void {
  if (entry.earlier) for (const [h, n] of entry.earlier) h.release(n);
  entry.holder?.release(entry.held);
  entry.holder = undefined;
  entry.held = 0;
  entry.earlier = undefined;
}

/** The transactions an entry holds, oldest first, with how many of their changes. */
export function holdersOf(entry: Entry): Array<[Holder, number]> {
  const all: Array<[Holder, number]> = entry.earlier ? [...entry.earlier] : [];
  if (entry.holder) all.push([entry.holder, entry.held]);
  return all;
}

export type NetEffect =
  | {
      kind: 'send';
      parts: Part[];
      /** recorded as the key's error even when the parts succeed */ failure?: string;
    }
  /**
   * `unchanged`: nothing the platform sees changed in the window, so no request and no outcome is
   * stored (the key's last outcome still tells the truth).
   */
  | { kind: 'skipped'; reason: string; unchanged?: true }
  | { kind: 'failed'; reason: string };

const UNCHANGED: NetEffect = { kind: 'skipped', reason: 'no mapped column changed', unchanged: true };

/**
 * Whether every state the key passed through in the window is the state before it: same identity
 * and same set of groups (TOAST resolved), no gap, no re-sync. Then any prefix of the window leaves
 * the platform where it was, replayed or not, in either mode.
 */
export function unchangedWindow(w: Window): boolean {
  const { before, after } = w;
  if (w.restate === true || w.gap === true || (w.passed !== undefined && w.passed.length > 0)) return false;
  if (after === null || before === null || before === 'unknown') return false;
  return before.groups !== null && after.groups !== null && sameTarget(before, after);
}

/** The earlier states of a window that has none (never added to; not frozen: iterating a frozen array allocates). */
const NO_PRIOR: Image[] = [];

const UNTRANSLATABLE =
  'the old row is not in the WAL, so this change cannot be translated: run ALTER TABLE ... REPLICA IDENTITY FULL or set deleteLookup: state';

/** An image whose identity can be addressed on the platform (it may still be unsendable for its groups). */
function addressable(image: Image | null): image is Image {
  return image !== null && (!image.error || image.groupsError === true);
}

/** A key's buffered window as `netEffect` reads it (an Entry, once `lookup` is resolved). */
export interface Window {
  before: Exclude<Before, 'lookup'>;
  after: Image | null;
  passed?: readonly Image[] | undefined;
  gap?: boolean;
  restate?: boolean;
}

/**
 * The API calls that bring the platform from wherever this key's buffered changes may have left it
 * to `after`. `before` must not be `lookup`; groups must be resolved (not null) by now, except in
 * `passed` and `before`, where groups not known are never removed.
 *
 * `fresh` says no change of the window was ever sent (the dispatcher knows the highest position it
 * may have sent, across restarts). Only then may a state the key passed through be ignored, and
 * only then is "nothing to send" right for a row that came and went: the coalescing table's rule
 * for that case. Otherwise every (customer, group) pair the key held in the window and holds no
 * longer is removed, and the latest state is set.
 */
export function netEffect(mode: SourceMode, w: Window, fresh = false): NetEffect {
  if (unchangedWindow(w)) return UNCHANGED;
  const { before, after, passed } = w;
  // Nothing of the key on the platform before or after, nor in between: a delete of a row whose last
  // outcome removed it already (the stored state says so). Nothing changes: its outcome stays.
  if (before === null && after === null && !passed?.length && w.gap !== true && w.restate !== true)
    return UNCHANGED;
  const b = before === 'unknown' ? null : addressable(before) ? before : null;
  const a = addressable(after) ? after : null;
  const failure = after?.error;
  // No array for a window without an earlier state (a new row, a snapshot's row): most of them.
  const prior: Image[] = b ? [b] : !fresh && passed ? [] : NO_PRIOR;
  if (!fresh && passed) for (const p of passed) if (addressable(p)) prior.push(p);

  const parts =
    mode === 'row'
      ? rowParts(prior, a)
      : membershipParts(b, prior, a, w.restate === true || (!fresh && w.gap === true));
  // (A fresh membership window that came back to its pair: nothing was sent, nothing to store.)
  if (parts === SKIP_UNCHANGED) return UNCHANGED;
  // With `unknown`, what the row held before the window cannot be removed: say so on the row.
  const reason = failure ?? (before === 'unknown' && !a ? UNTRANSLATABLE : undefined);
  if (reason !== undefined)
    return parts.length ? { kind: 'send', parts, failure: reason } : { kind: 'failed', reason };
  if (parts.length === 0) {
    if (a === null && b !== null && prior.every((p) => p.groups !== null))
      return {
        kind: 'skipped',
        reason: 'row gone; nothing of it to remove (no group of it, or other rows of the source hold them)',
      };
    if (a === null) return { kind: 'skipped', reason: 'row gone (or outside the filter) before it was sent' };
    return { kind: 'skipped', reason: 'no groups to add' };
  }
  return { kind: 'send', parts };
}

/** The order a flush's requests start in: what a key lost goes before what it holds is set. */
export const OP_ORDER: readonly OptType[] = ['delete', 'update', 'add'];

/**
 * The net effects of one flush's entries (one per key), index-aligned. Keys interact: a pair or
 * identity one key left may be taken by another key within the same window, and the first key's
 * replay deletes it (deletes go first). So a key that kept its state is set again when another
 * key of the flush deletes what it holds, instead of being skipped as unchanged.
 */
export function planFlush(
  mode: SourceMode,
  entries: readonly Entry[],
  isFresh: (entry: Entry) => boolean,
): NetEffect[] {
  const effects = entries.map((e) => netEffect(mode, e as Window, isFresh(e)));
  let deleted: Map<string, Part[]> | undefined;
  for (const e of effects)
    if (e.kind === 'send')
      for (const p of e.parts) {
        if (p.op !== 'delete') continue;
        deleted ??= new Map();
        const k = identityText(p.identity);
        const list = deleted.get(k);
        if (list) list.push(p);
        else deleted.set(k, [p]);
      }
  if (deleted === undefined) return effects;
  const removes = deleted;
  return effects.map((effect, i) => {
    const entry = entries[i] as Entry;
    const after = entry.after;
    if (effect !== UNCHANGED || !after) return effect;
    const hit = removes
      .get(identityText(after.identity))
      ?.some((d) => d.groups.length === 0 || d.groups.some((g) => after.groups?.includes(g)));
    return hit ? netEffect(mode, { ...(entry as Window), restate: true }, isFresh(entry)) : effect;
  });
}
