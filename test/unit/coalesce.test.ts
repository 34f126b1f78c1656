/**
 * Coalescing under replay. The expected platform state never comes from the code under test: it
 * comes from a plain model of SPEC sections 2 and 3 (each change translated on its own and applied
 * to a set of groups per customer), and is checked against what the database rows say.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  holdersOf,
  mergeChange,
  netEffect,
  newEntry,
  OP_ORDER,
  planFlush,
  releaseEntry,
  type Entry,
  type Part,
} from '../../src/batching/coalesce.js';
import type { SourceMode } from '../../src/config/types.js';
import type { SourceChange } from '../../src/mapping/changes.js';
import type { Image } from '../../src/mapping/source-mapper.js';

// ---------------------------------------------------------------------------------------------
// The independent model: SPEC section 2's groups per customer, section 3's translation per change.

type Op = 'add' | 'update' | 'delete';

/** The platform: groups per customer identity. add = union, update = replace, delete = remove (all if none). */
class Platform {
  readonly sets = new Map<string, Set<string>>();

  apply(op: Op, customer: string, groups: readonly string[]): void {
    const set = this.sets.get(customer) ?? new Set<string>();
    if (op === 'add') for (const g of groups) set.add(g);
    else if (op === 'update') {
      set.clear();
      for (const g of groups) set.add(g);
    } else if (groups.length === 0) set.clear();
    else for (const g of groups) set.delete(g);
    this.sets.set(customer, set);
  }

  clone(): Platform {
    const p = new Platform();
    for (const [k, v] of this.sets) p.sets.set(k, new Set(v));
    return p;
  }

  state(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [k, v] of [...this.sets].sort(([a], [b]) => a.localeCompare(b)))
      if (v.size) out[k] = [...v].sort();
    return out;
  }
}

/** A source row in the model: its customer and its groups (membership rows: one group). */
interface RowState {
  id: string;
  groups: string[];
}

/**
 * SPEC section 3, one change at a time (the way a bridge that never coalesced would send it): a
 * source adds the groups a row gained and deletes those it lost, per customer; it never replaces a
 * customer's set and never removes a group it did not hold.
 */
function applyOneByOne(p: Platform, mode: SourceMode, before: RowState | null, after: RowState | null): void {
  for (const [op, id, groups] of oneByOneCalls(mode, before, after)) p.apply(op, id, groups);
}

type Call = [Op, string, string[]];

function oneByOneCalls(mode: SourceMode, before: RowState | null, after: RowState | null): Call[] {
  if (mode === 'row') {
    const sameId = before !== null && after !== null && before.id === after.id;
    const lost = before ? before.groups.filter((g) => !(sameId && after?.groups.includes(g))) : [];
    const gained = after ? after.groups.filter((g) => !(sameId && before?.groups.includes(g))) : [];
    const calls: Call[] = [];
    if (before && lost.length) calls.push(['delete', before.id, lost]);
    if (after && gained.length) calls.push(['add', after.id, gained]);
    return calls;
  }
  const same = before && after && before.id === after.id && before.groups[0] === after.groups[0];
  if (same) return [];
  const calls: Call[] = [];
  if (before) calls.push(['delete', before.id, before.groups]);
  if (after) calls.push(['add', after.id, after.groups]);
  return calls;
}

/** Whether a change leaves what the platform sees as it was (the model's own notion of a no-op). */
function sameState(before: RowState | null, after: RowState | null): boolean {
  if (!before || !after || before.id !== after.id) return false;
  const b = new Set(before.groups);
  return b.size === new Set(after.groups).size && after.groups.every((g) => b.has(g));
}

function renamed(r: RowState | null, rename: (g: string) => string): RowState | null {
  return r ? { id: r.id, groups: r.groups.map(rename) } : null;
}

/** What the rows say the platform must hold. */
function desired(mode: SourceMode, rows: ReadonlyMap<number, RowState>): Record<string, string[]> {
  const p = new Platform();
  for (const r of rows.values()) p.apply('add', r.id, r.groups);
  void mode;
  return p.state();
}

// ---------------------------------------------------------------------------------------------
// Generated histories: several source rows sharing a few customers, identities (row mode) and
// pairs (membership mode) unique among live rows at every moment, as a unique constraint keeps them.

interface ModelChange {
  key: number;
  before: RowState | null;
  after: RowState | null;
}

const IDS = ['a', 'b', 'c'];
const GROUPS = ['g1', 'g2', 'g3'];

const step = fc.record({
  // `touch`: an UPDATE of a column the source does not map (last login, points): the row's
  // identity and groups stay, in the order the column holds them or another (a set either way).
  kind: fc.constantFrom('write', 'write', 'delete', 'touch'),
  key: fc.integer({ min: 0, max: 2 }),
  id: fc.constantFrom(...IDS),
  groups: fc.subarray(GROUPS),
  g: fc.constantFrom(...GROUPS),
});

type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;

/** Plays steps against the rows (skipping those a unique constraint would refuse). */
function play(mode: SourceMode, rows: Map<number, RowState>, steps: readonly Step[]): ModelChange[] {
  const out: ModelChange[] = [];
  for (const s of steps) {
    const current = rows.get(s.key) ?? null;
    if (s.kind === 'delete') {
      if (!current) continue;
      rows.delete(s.key);
      out.push({ key: s.key, before: current, after: null });
      continue;
    }
    if (s.kind === 'touch') {
      if (!current) continue;
      const same = { id: current.id, groups: s.g === 'g1' ? [...current.groups].reverse() : current.groups };
      rows.set(s.key, same);
      out.push({ key: s.key, before: current, after: same });
      continue;
    }
    const next: RowState = mode === 'row' ? { id: s.id, groups: s.groups } : { id: s.id, groups: [s.g] };
    const taken = [...rows].some(
      ([k, r]) => k !== s.key && r.id === next.id && (mode === 'row' || r.groups[0] === next.groups[0]),
    );
    if (taken) continue;
    rows.set(s.key, next);
    out.push({ key: s.key, before: current, after: next });
  }
  return out;
}

const history = fc.record({
  mode: fc.constantFrom<SourceMode>('row', 'membership'),
  initial: fc.array(step, { maxLength: 4 }),
  window: fc.array(step, { minLength: 1, maxLength: 10 }),
  /** Where the window splits into the flushes of the final (replayed) delivery. */
  flushAt: fc.nat(),
  /** How many of the earlier attempt's requests reached the platform. */
  sentParts: fc.nat(),
  earlierChanges: fc.nat(),
});

// ---------------------------------------------------------------------------------------------
// The code under test, driven as the dispatcher drives it: one entry per key per flush, then the
// flush's parts sent deletes first, then updates, then adds (docs/design.md, "Ordering").

const T = new Date('2024-05-01T00:00:00Z');
const holder = { hold() {}, release() {} };

function image(r: RowState | null): Image | null {
  return r ? { identity: { thirdId: r.id }, groups: [...r.groups] } : null;
}

function sourceChange(c: ModelChange): SourceChange {
  return {
    kind: c.before ? (c.after ? 'update' : 'delete') : 'insert',
    key: { text: JSON.stringify({ id: c.key }), values: { id: c.key } },
    before: image(c.before),
    after: image(c.after),
  };
}

/** One entry per key, as the batcher builds them. */
function entriesOf(changes: readonly ModelChange[]): Entry[] {
  const entries = new Map<number, Entry>();
  changes.forEach((c, i) => {
    const e = entries.get(c.key);
    if (e) mergeChange(e, sourceChange(c), BigInt(i + 1), 0, T, holder);
    else entries.set(c.key, newEntry(sourceChange(c), BigInt(i + 1), 0, T, holder));
  });
  return [...entries.values()];
}

/** The parts one flush of these changes sends, in the order they reach the platform. */
function flushParts(mode: SourceMode, changes: readonly ModelChange[], fresh: boolean): Part[] {
  const list = entriesOf(changes);
  const parts: Part[] = [];
  for (const effect of planFlush(mode, list, () => fresh))
    if (effect.kind === 'send') parts.push(...effect.parts);
  list.forEach(releaseEntry);
  return OP_ORDER.flatMap((op) => parts.filter((p) => p.op === op));
}

function send(p: Platform, parts: readonly Part[]): void {
  for (const part of parts) p.apply(part.op, part.identity.thirdId as string, part.groups);
}

// ---------------------------------------------------------------------------------------------

describe('coalescing under replay (property, against an independent model)', () => {
  it('from any prefix the platform already applied, the coalesced calls reach the database state', () => {
    fc.assert(
      fc.property(history, ({ mode, initial, window, flushAt, sentParts, earlierChanges }) => {
        const rows = new Map<number, RowState>();
        play(mode, rows, initial);
        const start = new Platform();
        for (const [k, v] of Object.entries(desired(mode, rows))) start.apply('update', k, v);
        const changes = play(mode, rows, window);
        fc.pre(changes.length > 0);
        const target = desired(mode, rows);

        // The model itself: every change one by one from a consistent start gives the rows' state.
        const oneByOne = start.clone();
        for (const c of changes) applyOneByOne(oneByOne, mode, c.before, c.after);
        expect(oneByOne.state()).toEqual(target);

        // Changes that change nothing the platform sees (same customer, same set of groups) cost
        // nothing: a window of only those sends no call, whether or not it was sent before.
        if (changes.every((c) => sameState(c.before, c.after))) {
          expect(flushParts(mode, changes, true), 'no-op window, fresh').toEqual([]);
          expect(flushParts(mode, changes, false), 'no-op window, replayed').toEqual([]);
        }

        // Nothing sent yet (a first delivery): coalescing may assume the platform is at `before`.
        const first = start.clone();
        send(first, flushParts(mode, changes, true));
        expect(first.state(), 'fresh window').toEqual(target);

        const split = flushAt % (changes.length + 1);
        for (let prefix = 0; prefix <= changes.length; prefix++) {
          // (1) The platform applied the first `prefix` changes one by one, answers lost.
          const replayed = start.clone();
          for (const c of changes.slice(0, prefix)) applyOneByOne(replayed, mode, c.before, c.after);
          // The replay: the whole window again, as one flush and as two.
          const once = replayed.clone();
          send(once, flushParts(mode, changes, false));
          expect(once.state(), `prefix ${prefix} one by one, one flush`).toEqual(target);
          const twice = replayed.clone();
          send(twice, flushParts(mode, changes.slice(0, split), false));
          send(twice, flushParts(mode, changes.slice(split), false));
          expect(twice.state(), `prefix ${prefix} one by one, flushes split at ${split}`).toEqual(target);
        }

        // (2) An earlier attempt coalesced the first changes itself, and only some of its requests
        // reached the platform before the answers were lost.
        const earlier = changes.slice(0, earlierChanges % (changes.length + 1));
        const earlierParts = flushParts(mode, earlier, true);
        const partial = start.clone();
        send(partial, earlierParts.slice(0, sentParts % (earlierParts.length + 1)));
        send(partial, flushParts(mode, changes, false));
        expect(partial.state(), 'after a partly delivered earlier flush').toEqual(target);
      }),
      { numRuns: 3000 },
    );
  });

  it('two sources on the same customers, and groups set by hand, survive any interleaving and any replay', () => {
    // A row-mode and a membership source share the customers a, b, c; a person set h1/h2 on some
    // of them on the platform. Group names differ between them (SPEC section 3: a name two sources
    // both put on one customer goes when either removes it). Each source's delivery is replayed
    // from its own prefix and cut into flushes its own way; the two reach the platform interleaved
    // call by call. Whatever the order, nothing of the other source or of the person is removed.
    const byHand = fc.record(Object.fromEntries(IDS.map((id) => [id, fc.subarray(['h1', 'h2'])])));
    const delivery = fc.record({
      initial: fc.array(step, { maxLength: 4 }),
      window: fc.array(step, { minLength: 1, maxLength: 8 }),
      prefix: fc.nat(),
      flushAt: fc.nat(),
    });
    fc.assert(
      fc.property(byHand, delivery, delivery, fc.array(fc.boolean()), (hand, rowH, memH, order) => {
        const sources = [
          { mode: 'row' as const, h: rowH, rename: (g: string) => g },
          { mode: 'membership' as const, h: memH, rename: (g: string) => g.replace('g', 'm') },
        ];
        const start = new Platform();
        const target = new Platform();
        for (const [id, groups] of Object.entries(hand)) {
          start.apply('add', id, groups);
          target.apply('add', id, groups);
        }
        const calls: Call[][] = [];
        const oneByOne: Call[] = [];
        for (const src of sources) {
          const rows = new Map<number, RowState>();
          const named = (cs: ModelChange[]) =>
            cs.map((c) => ({
              key: c.key,
              before: renamed(c.before, src.rename),
              after: renamed(c.after, src.rename),
            }));
          const initial = named(play(src.mode, rows, src.h.initial));
          for (const c of initial) applyOneByOne(start, src.mode, c.before, c.after);
          const changes = named(play(src.mode, rows, src.h.window));
          for (const r of rows.values()) target.apply('add', r.id, r.groups.map(src.rename));
          for (const c of changes) oneByOne.push(...oneByOneCalls(src.mode, c.before, c.after));
          // What reached the platform of this source: a prefix one by one (answers lost), then the
          // replay of the whole window in two flushes.
          const prefix = src.h.prefix % (changes.length + 1);
          const split = src.h.flushAt % (changes.length + 1);
          const own: Call[] = changes
            .slice(0, prefix)
            .flatMap((c) => oneByOneCalls(src.mode, c.before, c.after));
          for (const part of [
            ...flushParts(src.mode, changes.slice(0, split), false),
            ...flushParts(src.mode, changes.slice(split), false),
          ])
            own.push([part.op, part.identity.thirdId as string, part.groups]);
          calls.push(own);
        }
        // The model: every change one by one, the sources one after the other, from the start.
        const model = start.clone();
        for (const [op, id, groups] of oneByOne) model.apply(op, id, groups);
        expect(model.state(), 'model').toEqual(target.state());
        // The calls of the two sources interleaved as `order` says.
        const platform = start.clone();
        const [a, b] = calls as [Call[], Call[]];
        let i = 0;
        let j = 0;
        for (let k = 0; i < a.length || j < b.length; k++) {
          const fromA = j >= b.length || (i < a.length && (order[k % Math.max(order.length, 1)] ?? true));
          const [op, id, groups] = fromA ? (a[i++] as Call) : (b[j++] as Call);
          expect(op, 'never replaces a set').not.toBe('update');
          expect(groups.length, 'never removes every group').toBeGreaterThan(0);
          platform.apply(op, id, groups);
        }
        expect(platform.state()).toEqual(target.state());
      }),
      { numRuns: 2000 },
    );
  });

  it('the model agrees with SPEC section 3 on the example of the replay issue', () => {
    // Synced with old1,old2; updated to new1,new2; deleted. Any prefix applied, then the replay.
    const changes: ModelChange[] = [
      { key: 1, before: { id: 'p', groups: ['old1', 'old2'] }, after: { id: 'p', groups: ['new1', 'new2'] } },
      { key: 1, before: { id: 'p', groups: ['new1', 'new2'] }, after: null },
    ];
    for (let prefix = 0; prefix <= changes.length; prefix++) {
      const p = new Platform();
      p.apply('add', 'p', ['old1', 'old2']);
      for (const c of changes.slice(0, prefix)) applyOneByOne(p, 'row', c.before, c.after);
      send(p, flushParts('row', changes, false));
      expect(p.state(), `prefix ${prefix}`).toEqual({});
    }
  });
});

describe('netEffect', () => {
  const a1 = { identity: { thirdId: 'a' }, groups: ['g1'] };
  const a2 = { identity: { thirdId: 'a' }, groups: ['g2'] };
  const b1 = { identity: { thirdId: 'b' }, groups: ['g1'] };
  const ops = (e: ReturnType<typeof netEffect>) =>
    e.kind === 'send' ? e.parts.map((p) => `${p.op}:${p.identity.thirdId}:${p.groups.join('+')}`) : e.kind;

  it('keeps SPEC section 4 table for a window that was never sent (fresh)', () => {
    expect(ops(netEffect('row', { before: null, after: a2, passed: [a1] }, true))).toEqual(['add:a:g2']); // insert + update -> add
    expect(ops(netEffect('row', { before: null, after: null, passed: [a1] }, true))).toBe('skipped'); // insert + delete -> nothing
    // update + update: the groups lost and gained between the first and the last state.
    expect(ops(netEffect('row', { before: a1, after: a2 }, true))).toEqual(['delete:a:g1', 'add:a:g2']);
    // update + delete: what the row held before the window (g2 was never sent).
    expect(ops(netEffect('row', { before: a1, after: null, passed: [a2] }, true))).toEqual(['delete:a:g1']);
    // delete + insert: the same as an update.
    expect(ops(netEffect('row', { before: a1, after: a2, passed: [] }, true))).toEqual([
      'delete:a:g1',
      'add:a:g2',
    ]);
    expect(ops(netEffect('row', { before: a1, after: b1 }, true))).toEqual(['delete:a:g1', 'add:b:g1']);
  });

  it('sets state per pair when the window may have been sent before: passed states are removed too', () => {
    // The kill -9 case: an insert reached the platform, then a delete, then a replay.
    expect(ops(netEffect('row', { before: null, after: null, passed: [a1] }, false))).toEqual([
      'delete:a:g1',
    ]);
    // A row that moved a -> b -> a: b may hold groups from the earlier attempt.
    expect(ops(netEffect('row', { before: a1, after: a2, passed: [b1] }, false))).toEqual([
      'delete:a:g1',
      'delete:b:g1',
      'add:a:g2',
    ]);
    // An insert replayed: its groups are added; nothing it never held is touched.
    expect(ops(netEffect('row', { before: null, after: a2 }, false))).toEqual(['add:a:g2']);
    // Membership: every pair passed through is deleted, the latest added again.
    expect(ops(netEffect('membership', { before: a1, after: a1, passed: [a2] }, false))).toEqual([
      'delete:a:g2',
      'add:a:g1',
    ]);
    expect(ops(netEffect('membership', { before: a1, after: a1, passed: [a2] }, true))).toBe('skipped');
    // Deleted and inserted again: the delete may have reached the platform.
    expect(ops(netEffect('membership', { before: a1, after: a1, gap: true }, false))).toEqual(['add:a:g1']);
    expect(ops(netEffect('membership', { before: a1, after: a1, gap: true }, true))).toBe('skipped');
    // A re-sync: the platform may have drifted from what sync_status says, so the pair is sent.
    expect(ops(netEffect('membership', { before: a1, after: a1, restate: true }, true))).toEqual([
      'add:a:g1',
    ]);
    expect(ops(netEffect('row', { before: a1, after: a1, restate: true }, true))).toEqual(['add:a:g1']);
  });

  it('a window that changed nothing the platform sees sends nothing and stores nothing, in both modes', () => {
    const noop = { kind: 'skipped', unchanged: true };
    const a12 = { identity: { thirdId: 'a' }, groups: ['g1', 'g2'] };
    const a21 = { identity: { thirdId: 'a' }, groups: ['g2', 'g1'] };
    for (const mode of ['row', 'membership'] as const)
      for (const fresh of [true, false]) {
        expect(netEffect(mode, { before: a1, after: { ...a1 } }, fresh), `${mode} ${fresh}`).toMatchObject(
          noop,
        );
        // An unmappable row stays as it was too: its last outcome (failed) still tells the truth.
        const bad = { identity: {}, groups: ['g1'], error: 'no identity value' };
        expect(netEffect(mode, { before: bad, after: { ...bad } }, fresh)).toMatchObject(noop);
      }
    expect(netEffect('row', { before: a12, after: a21 }, false)).toMatchObject(noop); // a set
    // Not unchanged: another state in between (it may have been sent), a gap, a re-sync, or no
    // old row to compare with.
    expect(ops(netEffect('row', { before: a1, after: a1, passed: [a2] }, false))).toEqual([
      'delete:a:g2',
      'add:a:g1',
    ]);
    expect(ops(netEffect('row', { before: a1, after: a1, gap: true }, false))).toEqual(['add:a:g1']);
    expect(ops(netEffect('row', { before: a1, after: a1, restate: true }, false))).toEqual(['add:a:g1']);
    expect(ops(netEffect('row', { before: 'unknown', after: a1 }, false))).toEqual(['add:a:g1']);
    expect(ops(netEffect('row', { before: { ...a1, groups: null }, after: a1 }, false))).toEqual([
      'add:a:g1',
    ]);
  });

  it('an empty set removes what the row held, never all of the customer; a new row without groups sends nothing', () => {
    const none = { identity: { thirdId: 'a' }, groups: [] };
    expect(ops(netEffect('row', { before: a1, after: none }))).toEqual(['delete:a:g1']);
    expect(ops(netEffect('row', { before: null, after: none }, true))).toBe('skipped');
    expect(ops(netEffect('row', { before: null, after: none }, false))).toBe('skipped');
  });

  it('never sends an unmappable row, and says why; a gone identity still loses what the row held', () => {
    const bad = { identity: {}, groups: ['g'], error: 'no identity value' };
    expect(netEffect('row', { before: null, after: bad })).toEqual({
      kind: 'failed',
      reason: 'no identity value',
    });
    expect(netEffect('row', { before: a1, after: bad })).toEqual({
      kind: 'send',
      parts: [{ op: 'delete', identity: { thirdId: 'a' }, groups: ['g1'] }],
      failure: 'no identity value',
    });
  });

  it('a group the platform cannot carry fails the row and leaves its customer alone', () => {
    const comma = { identity: { thirdId: 'a' }, groups: ['VIP, Gold'], error: 'comma', groupsError: true };
    expect(netEffect('row', { before: a1, after: comma }, false)).toEqual({
      kind: 'failed',
      reason: 'comma',
    });
    expect(ops(netEffect('row', { before: b1, after: comma }, false))).toEqual(['delete:b:g1']);
    expect(netEffect('membership', { before: a1, after: comma }, false)).toEqual({
      kind: 'send',
      parts: [{ op: 'delete', identity: { thirdId: 'a' }, groups: ['g1'] }],
      failure: 'comma',
    });
  });

  it('without the old row (unknown), sets the new state and reports what it cannot remove', () => {
    expect(ops(netEffect('row', { before: 'unknown', after: a1 }, true))).toEqual(['add:a:g1']);
    expect(netEffect('row', { before: 'unknown', after: null }, true)).toMatchObject({ kind: 'failed' });
    expect(netEffect('row', { before: 'unknown', after: null, passed: [b1] }, false)).toMatchObject({
      kind: 'send',
      parts: [{ op: 'delete', identity: { thirdId: 'b' }, groups: ['g1'] }],
      failure: expect.stringContaining('REPLICA IDENTITY FULL'),
    });
  });
});

describe('netEffect: what is never addressed, or addressed once', () => {
  const a1 = { identity: { thirdId: 'a' }, groups: ['g1'] };
  const a2 = { identity: { thirdId: 'a' }, groups: ['g2'] };
  const a3 = { identity: { thirdId: 'a' }, groups: ['g3'] };
  const b1 = { identity: { thirdId: 'b' }, groups: ['g1'] };
  const b2 = { identity: { thirdId: 'b' }, groups: ['g2'] };
  const ops = (e: ReturnType<typeof netEffect>) =>
    e.kind === 'send'
      ? e.parts.map((p) => `${p.op}:${p.identity.thirdId ?? ''}:${p.groups.join('+')}`)
      : e.kind;

  it('without `fresh`, assumes the window may have been sent (the safe side)', () => {
    // Inserted and deleted: only a window known never to have been sent may skip it.
    expect(ops(netEffect('row', { before: null, after: null, passed: [a1] }))).toEqual(['delete:a:g1']);
  });

  it('a state that could not be mapped was never sent, so nothing is cleared for it', () => {
    // SPEC section 6: a row without any identity is failed locally and never sent.
    const noIdentity = { identity: {}, groups: ['g1'], error: 'no identity value' };
    expect(ops(netEffect('row', { before: noIdentity, after: a1 }, false))).toEqual(['add:a:g1']);
    expect(ops(netEffect('row', { before: a1, after: a2, passed: [noIdentity] }, false))).toEqual([
      'delete:a:g1',
      'add:a:g2',
    ]);
  });

  it('row mode: an identity the row left loses every group the row held there, in one call', () => {
    expect(ops(netEffect('row', { before: b1, after: a1, passed: [b2] }, false))).toEqual([
      'delete:b:g1+g2',
      'add:a:g1',
    ]);
  });

  it('membership mode: each pair the row left is deleted once, the latest added', () => {
    // a/g1 -> a/g2 -> a/g1 -> a/g3: a/g1 is both the state before the window and a passed one.
    expect(ops(netEffect('membership', { before: a1, after: a3, passed: [a2, a1] }, false))).toEqual([
      'delete:a:g1',
      'delete:a:g2',
      'add:a:g3',
    ]);
  });

  it('membership mode: a pair that was never sent is never deleted', () => {
    // A group name with a comma fails its row and is never sent (docs/design.md): deleting it would
    // make the platform split it and remove the customer's groups VIP and Gold.
    const comma = { identity: { thirdId: 'a' }, groups: ['VIP, Gold'], error: 'comma', groupsError: true };
    expect(ops(netEffect('membership', { before: comma, after: a1 }, false))).toEqual(['add:a:g1']);
    expect(ops(netEffect('membership', { before: a1, after: a2, passed: [comma] }, false))).toEqual([
      'delete:a:g1',
      'add:a:g2',
    ]);
    // A pair whose group is unknown: a delete without groups would remove every group of `a`.
    const unknown = { identity: { thirdId: 'a' }, groups: null };
    expect(ops(netEffect('membership', { before: a1, after: a2, passed: [unknown] }, false))).toEqual([
      'delete:a:g1',
      'add:a:g2',
    ]);
  });

  it('a skipped row says why: gone before it was sent, or nothing to add', () => {
    const gone = netEffect('row', { before: null, after: null, passed: [a1] }, true);
    const empty = netEffect('row', { before: null, after: { identity: { thirdId: 'a' }, groups: [] } }, true);
    const unchanged = netEffect('membership', { before: a1, after: a1 }, true);
    expect(gone).toMatchObject({ kind: 'skipped', reason: expect.stringMatching(/gone/) });
    expect(empty).toMatchObject({ kind: 'skipped', reason: expect.stringMatching(/no groups/) });
    expect(unchanged).toMatchObject({ kind: 'skipped', unchanged: true });
    expect(gone).not.toHaveProperty('unchanged');
    expect(empty).not.toHaveProperty('unchanged');
  });
});

describe('planFlush: keys meet in a flush', () => {
  const kinds = (mode: SourceMode, changes: ModelChange[], fresh: boolean) =>
    planFlush(mode, entriesOf(changes), () => fresh).map((e) => e.kind);

  it('an update that changes neither the customer nor the group is skipped, unless restated', () => {
    // docs/design.md: "An update that changes neither the customer nor the group is skipped
    // (unless the window may have deleted the pair)"; a re-sync restates live rows.
    const same: ModelChange[] = [
      { key: 1, before: { id: 'a', groups: ['g1'] }, after: { id: 'a', groups: ['g1'] } },
    ];
    for (const fresh of [true, false]) {
      expect(kinds('membership', same, fresh)).toEqual(['skipped']);
      expect(kinds('membership', [...same, ...same], fresh)).toEqual(['skipped']);
    }
    const restated = (c: ModelChange, restate: boolean): SourceChange => ({ ...sourceChange(c), restate });
    const [one] = same as [ModelChange];
    const first = newEntry(restated(one, true), 1n, 0, T, holder);
    expect(planFlush('membership', [first], () => true)).toEqual([
      { kind: 'send', parts: [{ op: 'add', identity: { thirdId: 'a' }, groups: ['g1'] }] },
    ]);
    // Restated by a later change of the window, or by an earlier one and not undone.
    const later = newEntry(restated(one, false), 1n, 0, T, holder);
    mergeChange(later, restated(one, true), 2n, 0, T, holder);
    expect(planFlush('membership', [later], () => true)[0]?.kind).toBe('send');
    mergeChange(first, restated(one, false), 2n, 0, T, holder);
    expect(planFlush('membership', [first], () => true)[0]?.kind).toBe('send');
  });

  it('a membership row that kept its pair is re-added when another key of the flush deletes it', () => {
    // Key 1 held a/g1 and moved to a/g2 while its earlier request was in flight, so its window
    // began before key 2 took a/g1 (in a flush already sent); key 2 then changed an unmapped
    // column. Key 1's delete of a/g1 goes first: without key 2's add, the platform would lose it.
    const changes: ModelChange[] = [
      { key: 1, before: { id: 'a', groups: ['g1'] }, after: { id: 'a', groups: ['g2'] } },
      { key: 2, before: { id: 'a', groups: ['g1'] }, after: { id: 'a', groups: ['g1'] } },
    ];
    for (const fresh of [true, false]) {
      const p = new Platform();
      p.apply('add', 'a', ['g1']);
      send(p, flushParts('membership', changes, fresh));
      // The rows: key 1 is a/g2, key 2 is a/g1.
      expect(p.state(), `fresh ${fresh}`).toEqual({ a: ['g1', 'g2'] });
    }
  });

  it('a row-mode key that kept its state is set again when another key of the flush clears its customer', () => {
    // As above in row mode: key 1's window (replayed) clears customer a, which key 2 holds
    // unchanged. Deletes go first, so key 2 must set a again.
    const changes: ModelChange[] = [
      { key: 1, before: { id: 'a', groups: ['g1'] }, after: { id: 'b', groups: ['g1'] } },
      { key: 2, before: { id: 'a', groups: ['g2'] }, after: { id: 'a', groups: ['g2'] } },
    ];
    const p = new Platform();
    p.apply('add', 'a', ['g2']);
    send(p, flushParts('row', changes, false));
    expect(p.state()).toEqual({ a: ['g2'], b: ['g1'] });
    expect(kinds('row', changes.slice(1), false)).toEqual(['skipped']);
  });

  it('an unchanged pair stays skipped when the flush deletes other pairs', () => {
    const changes: ModelChange[] = [
      { key: 1, before: { id: 'b', groups: ['g1'] }, after: { id: 'b', groups: ['g2'] } },
      { key: 2, before: { id: 'a', groups: ['g1'] }, after: { id: 'a', groups: ['g1'] } },
      { key: 3, before: { id: 'a', groups: ['g2'] }, after: { id: 'a', groups: ['g2'] } },
    ];
    expect(kinds('membership', changes, false)).toEqual(['send', 'skipped', 'skipped']);
  });
});

describe('entries', () => {
  const key = { text: '{"id":1}', values: { id: 1 } };
  const img = (id: string, groups: string[] | null): Image => ({ identity: { thirdId: id }, groups });

  it('records each other identity or group the row passed through, once', () => {
    const e = newEntry({ kind: 'insert', key, before: null, after: img('a', ['g1']) }, 1n, 0, T, holder);
    for (const [id, g] of [
      ['b', 'g1'],
      ['a', 'g1'],
      ['b', 'g1'],
      ['b', 'g2'],
    ] as const)
      mergeChange(e, { kind: 'update', key, before: null, after: img(id, [g]) }, 2n, 0, T, holder);
    expect(e.passed?.map((p) => `${p.identity.thirdId}:${p.groups?.join()}`)).toEqual(['a:g1', 'b:g1']);
    expect(e.firstLsn).toBe(1n);
    expect(e.lsn).toBe(2n);
    releaseEntry(e);
  });

  it('keeps the previous groups when the latest change carried an unchanged TOAST value', () => {
    const e = newEntry({ kind: 'insert', key, before: null, after: img('a', ['big']) }, 1n, 0, T, holder);
    mergeChange(e, { kind: 'update', key, before: 'unknown', after: img('a', null) }, 2n, 0, T, holder);
    expect(e.after?.groups).toEqual(['big']);
    expect(e.passed).toBeUndefined();
    releaseEntry(e);
  });

  it('holds one change per transaction until the outcome is stored, then releases each', () => {
    // SPEC section 5: a transaction is confirmed only once every change it holds has an outcome.
    const counting = () => {
      const h = {
        held: 0,
        hold: (n: number) => void (h.held += n),
        release: (n: number) => void (h.held -= n),
      };
      return h;
    };
    const tx1 = counting();
    const tx2 = counting();
    const e = newEntry({ kind: 'insert', key, before: null, after: img('a', ['g1']) }, 1n, 0, T, tx1);
    expect(holdersOf(e)).toEqual([[tx1, 1]]);
    mergeChange(e, { kind: 'update', key, before: null, after: img('a', ['g2']) }, 1n, 1, T, tx1);
    mergeChange(e, { kind: 'update', key, before: null, after: img('b', ['g2']) }, 2n, 0, T, tx2);
    expect([tx1.held, tx2.held]).toEqual([2, 1]);
    expect(holdersOf(e)).toEqual([
      [tx1, 2],
      [tx2, 1],
    ]);
    releaseEntry(e);
    expect([tx1.held, tx2.held]).toEqual([0, 0]);
    expect(holdersOf(e)).toEqual([]);
  });
});
