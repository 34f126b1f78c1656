import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergeChange, netEffect, newEntry, releaseEntry, type Part } from '../../src/batching/coalesce.js';
import type { SourceMode } from '../../src/config/types.js';
import type { SourceChange } from '../../src/mapping/changes.js';
import type { Image } from '../../src/mapping/source-mapper.js';

/** The platform's group model of SPEC section 2. */
class Platform {
  readonly sets = new Map<string, Set<string>>();
  apply(p: Part): void {
    const id = JSON.stringify(p.identity);
    const set = this.sets.get(id) ?? new Set<string>();
    if (p.op === 'add') p.groups.forEach((g) => set.add(g));
    else if (p.op === 'update') {
      set.clear();
      p.groups.forEach((g) => set.add(g));
    } else if (p.groups.length === 0) set.clear();
    else p.groups.forEach((g) => set.delete(g));
    this.sets.set(id, set);
  }
  snapshot(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [k, v] of this.sets) if (v.size) out[k] = [...v].sort();
    return out;
  }
}

const holder = {
  n: 0,
  hold(k: number) {
    this.n += k;
  },
  release(k: number) {
    this.n -= k;
  },
};
const key = { text: '{"id":1}', values: { id: 1 } };

function img(id: string, groups: string[]): Image {
  return { identity: { thirdId: id }, groups };
}

/** A random history of one source row: insert / update / delete, valid in order. */
function histories(mode: SourceMode) {
  const image =
    mode === 'row'
      ? fc
          .record({ id: fc.constantFrom('a', 'b'), groups: fc.subarray(['g1', 'g2', 'g3']) })
          .map((r) => img(r.id, r.groups))
      : fc
          .record({ id: fc.constantFrom('a', 'b'), g: fc.constantFrom('g1', 'g2') })
          .map((r) => img(r.id, [r.g]));
  return fc.record({
    initial: fc.option(image, { nil: null }),
    steps: fc.array(fc.record({ op: fc.constantFrom('write', 'delete'), image }), {
      minLength: 1,
      maxLength: 8,
    }),
  });
}

function toChanges(initial: Image | null, steps: Array<{ op: string; image: Image }>): SourceChange[] {
  const out: SourceChange[] = [];
  let current = initial;
  for (const s of steps) {
    if (s.op === 'delete') {
      if (!current) continue;
      out.push({ kind: 'delete', key, before: current, after: null });
      current = null;
    } else {
      out.push({ kind: current ? 'update' : 'insert', key, before: current, after: s.image });
      current = s.image;
    }
  }
  return out;
}

function send(platform: Platform, mode: SourceMode, before: Image | null, after: Image | null): void {
  const effect = netEffect(mode, before, after);
  if (effect.kind === 'send') effect.parts.forEach((p) => platform.apply(p));
}

describe('coalescing', () => {
  for (const mode of ['row', 'membership'] as const) {
    it(`${mode} mode: the coalesced calls reach the same platform state as every change one by one`, () => {
      fc.assert(
        fc.property(histories(mode), ({ initial, steps }) => {
          const changes = toChanges(initial, steps);
          fc.pre(changes.length > 0);
          const oneByOne = new Platform();
          const coalesced = new Platform();
          if (initial) {
            send(oneByOne, mode, null, initial);
            send(coalesced, mode, null, initial);
          }
          for (const c of changes) send(oneByOne, mode, c.before as Image | null, c.after);
          const first = changes[0] as SourceChange;
          const entry = newEntry(first, 1n, new Date(), holder);
          for (const c of changes.slice(1)) mergeChange(entry, c, 2n, new Date(), holder);
          send(coalesced, mode, entry.before as Image | null, entry.after);
          releaseEntry(entry);
          expect(coalesced.snapshot()).toEqual(oneByOne.snapshot());
        }),
        { numRuns: 2000 },
      );
      expect(holder.n).toBe(0);
    });
  }

  it('follows the table of SPEC section 4', () => {
    const a = img('a', ['g1']);
    const b = img('a', ['g2']);
    const ops = (before: Image | null, after: Image | null) => {
      const e = netEffect('row', before, after);
      return e.kind === 'send' ? e.parts.map((p) => p.op) : e.kind;
    };
    expect(ops(null, b)).toEqual(['add']); // insert + update -> add(latest)
    expect(ops(null, null)).toBe('skipped'); // insert + ... + delete -> nothing
    expect(ops(a, b)).toEqual(['update']); // update + update -> update(latest); delete + insert -> update
    expect(ops(a, null)).toEqual(['delete']); // update + delete -> delete
    expect(ops(a, img('b', ['g1']))).toEqual(['delete', 'add']); // identity change: old deleted first
  });

  it('never sends an unmappable row, and says why', () => {
    const e = netEffect('row', null, { identity: {}, groups: ['g'], error: 'no identity value' });
    expect(e).toEqual({ kind: 'failed', reason: 'no identity value' });
  });

  it('keeps the previous groups when the latest change carried an unchanged TOAST value', () => {
    const entry = newEntry(
      { kind: 'insert', key, before: null, after: img('a', ['big']) },
      1n,
      new Date(),
      holder,
    );
    mergeChange(
      entry,
      { kind: 'update', key, before: 'unknown', after: { identity: { thirdId: 'a' }, groups: null } },
      2n,
      new Date(),
      holder,
    );
    expect(entry.after?.groups).toEqual(['big']);
    releaseEntry(entry);
  });
});
