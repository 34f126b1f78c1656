/**
 * Coalescing (SPEC section 4): per source row key a buffer keeps the platform's state before the
 * first buffered change and the row's latest state; at flush time the net effect of the two is
 * sent. insert+update -> add(latest); insert+...+delete -> nothing (skipped); update+update ->
 * update(latest); update+delete -> delete; delete+insert -> update. Pure functions.
 */
import type { SourceMode } from '../config/types.js';
import type { Before, SourceChange } from '../mapping/changes.js';
import { sameIdentity, type Identity, type Image, type RowKey } from '../mapping/source-mapper.js';
import type { OptType } from '../tuzhan/types.js';

/** Something that waits for the entry's outcome: a transaction of the position tracker. */
export interface Holder {
  hold(n: number): void;
  release(n: number): void;
}

export interface Entry {
  key: RowKey;
  before: Before;
  after: Image | null;
  /** Commit position and time of the latest change. */
  lsn: bigint;
  commitTime: Date;
  changes: number;
  /** The latest transaction waiting for this entry's outcome, and how many of its changes it holds. */
  holder: Holder | undefined;
  held: number;
  /** Earlier transactions waiting for it (the key changed in several before a flush), oldest first. */
  earlier: Array<[Holder, number]> | undefined;
}

/** Starts an entry for a key's first buffered change. */
export function newEntry(change: SourceChange, lsn: bigint, commitTime: Date, holder: Holder): Entry {
  holder.hold(1);
  return {
    key: change.key,
    before: change.before,
    after: change.after,
    lsn,
    commitTime,
    changes: 1,
    holder,
    held: 1,
    earlier: undefined,
  };
}

/** Folds a later change of the same key into its entry: the first `before` stays, `after` moves on. */
export function mergeChange(
  entry: Entry,
  change: SourceChange,
  lsn: bigint,
  commitTime: Date,
  holder: Holder,
): void {
  let after = change.after;
  // An unchanged TOAST value the server did not send is the value of the previous change.
  if (after && after.groups === null && entry.after && entry.after.groups !== null) {
    after = { ...after, groups: entry.after.groups };
  }
  entry.after = after;
  entry.lsn = lsn;
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

/** One API row to send: an operation on one customer. `groups` empty on a delete means "all". */
export interface Part {
  op: OptType;
  identity: Identity;
  groups: string[];
}

export type NetEffect =
  | {
      kind: 'send';
      parts: Part[];
      /** recorded as the key's error even when the parts succeed */ failure?: string;
    }
  | { kind: 'skipped'; reason: string }
  | { kind: 'failed'; reason: string };

const UNTRANSLATABLE =
  'the old row is not in the WAL, so this change cannot be translated: run ALTER TABLE ... REPLICA IDENTITY FULL or set deleteLookup: state';

function valid(image: Image | null): Image | null {
  return image && !image.error ? image : null;
}

/**
 * The API calls that take the platform from `before` to `after`. `before` must not be `lookup` and
 * groups must be resolved (not null) by now.
 */
export function netEffect(
  mode: SourceMode,
  before: Exclude<Before, 'lookup'>,
  after: Image | null,
): NetEffect {
  const b = before === 'unknown' ? before : valid(before);
  const a = valid(after);
  const afterError = after?.error;
  const groupsOf = (img: Image): string[] => img.groups ?? [];

  if (b === 'unknown') {
    if (!a)
      return afterError ? { kind: 'failed', reason: afterError } : { kind: 'failed', reason: UNTRANSLATABLE };
    if (mode === 'membership')
      return { kind: 'send', parts: [{ op: 'add', identity: a.identity, groups: groupsOf(a) }] };
    return { kind: 'send', parts: [replace(a)] };
  }

  const parts: Part[] = [];
  if (b && a && sameIdentity(b.identity, a.identity)) {
    if (mode === 'membership') {
      if (sameGroups(groupsOf(b), groupsOf(a)))
        return { kind: 'skipped', reason: 'no mapped column changed' };
      parts.push({ op: 'delete', identity: b.identity, groups: groupsOf(b) });
      parts.push({ op: 'add', identity: a.identity, groups: groupsOf(a) });
    } else {
      parts.push(replace(a));
    }
  } else {
    if (b) parts.push({ op: 'delete', identity: b.identity, groups: groupsOf(b) });
    if (a && groupsOf(a).length > 0) parts.push({ op: 'add', identity: a.identity, groups: groupsOf(a) });
  }
  if (afterError) {
    return parts.length
      ? { kind: 'send', parts, failure: afterError }
      : { kind: 'failed', reason: afterError };
  }
  if (parts.length === 0) {
    if (!b && !a)
      return {
        kind: 'skipped',
        reason: after === null ? 'row gone (or outside the filter) before it was sent' : 'no change',
      };
    return { kind: 'skipped', reason: 'no groups to add' };
  }
  return { kind: 'send', parts };
}

/** Row mode replaces the customer's set: an empty set is a delete of all groups. */
function replace(a: Image): Part {
  const groups = a.groups ?? [];
  return groups.length
    ? { op: 'update', identity: a.identity, groups }
    : { op: 'delete', identity: a.identity, groups: [] };
}

function sameGroups(x: string[], y: string[]): boolean {
  if (x.length !== y.length) return false;
  const s = new Set(x);
  return y.every((g) => s.has(g));
}
