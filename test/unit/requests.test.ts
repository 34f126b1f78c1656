/**
 * Request building (src/delivery/requests.ts): planned calls per key -> API rows per operation. Row
 * mode sends one row per key and call; membership mode merges the calls of one customer and
 * operation into one row whose groups are the union, in the order first seen (docs/design.md,
 * "Sources"). Expected rows written out by hand.
 */
import { describe, expect, it } from 'vitest';
import {
  identityKey,
  requestRows,
  withoutRefused,
  type DeliveryRow,
  type KeyChange,
  type PlannedPart,
} from '../../src/delivery/requests.js';

const change = (k: string): KeyChange => ({ rowKey: k, lsn: 1n, committedAt: new Date(0), priorAttempts: 0 });
const part = (op: PlannedPart['op'], thirdId: string, groups: string[], phone?: string): PlannedPart => ({
  op,
  identity: phone === undefined ? { thirdId } : { thirdId, phone },
  groups,
});

/** Rows per op as `customer[groups]<keys: op groups>`. */
function shape(byOp: ReturnType<typeof requestRows>): Record<string, string[]> {
  return Object.fromEntries(
    [...byOp].map(([op, rows]) => [
      op,
      rows.map(
        (r) =>
          `${r.identity.thirdId}${r.identity.phone ? `/${r.identity.phone}` : ''}[${r.groups.join(',')}]<${r.items
            .map((i) => `${i.change.rowKey}:${i.op} ${i.groups.join(',')}`)
            .join('; ')}>`,
      ),
    ]),
  );
}

describe('requestRows', () => {
  it('row mode: one row per key and call, in planning order, per operation', () => {
    const a = change('a');
    const b = change('b');
    const rows = requestRows('row', [
      { change: a, parts: [part('delete', 'old', []), part('update', 'c1', ['x', 'y'])] },
      { change: b, parts: [part('update', 'c1', ['z'])] },
    ]);
    expect(shape(rows)).toEqual({
      delete: ['old[]<a:delete >'],
      update: ['c1[x,y]<a:update x,y>', 'c1[z]<b:update z>'],
    });
    // The row's items point at the planned key change itself (its outcome is stored through it).
    expect(rows.get('update')?.[0]?.items[0]?.change).toBe(a);
    expect([...rows.keys()]).toEqual(['delete', 'update']);
  });

  it('membership mode: one row per customer and operation, groups joined in first-seen order', () => {
    const rows = requestRows('membership', [
      { change: change('1'), parts: [part('add', 'm1', ['g2'])] },
      { change: change('2'), parts: [part('add', 'm1', ['g1', 'g2'])] },
      { change: change('3'), parts: [part('delete', 'm1', ['g3'])] },
      { change: change('4'), parts: [part('add', 'm2', ['g1'])] },
      // Same thirdId, another phone: another identity, another row.
      { change: change('5'), parts: [part('add', 'm1', ['g4'], '139')] },
    ]);
    expect(shape(rows)).toEqual({
      add: ['m1[g2,g1]<1:add g2; 2:add g1,g2>', 'm2[g1]<4:add g1>', 'm1/139[g4]<5:add g4>'],
      delete: ['m1[g3]<3:delete g3>'],
    });
  });

  it('keeps the first row’s groups as they were planned (merging copies, never edits a plan)', () => {
    const planned = part('add', 'm1', ['g1']);
    requestRows('membership', [
      { change: change('1'), parts: [planned] },
      { change: change('2'), parts: [part('add', 'm1', ['g2'])] },
    ]);
    expect(planned.groups).toEqual(['g1']);
  });

  it('has no rows for nothing planned', () => {
    expect(requestRows('row', []).size).toBe(0);
    expect(requestRows('membership', [{ change: change('1'), parts: [] }]).size).toBe(0);
  });
});

describe('withoutRefused', () => {
  it('leaves out the keys whose change the platform refused in part, and their groups from shared rows', () => {
    const a = change('a');
    const b = change('b');
    const c = change('c');
    const rows = requestRows('membership', [
      { change: a, parts: [part('add', 'm1', ['x'])] },
      { change: b, parts: [part('add', 'm1', ['y'])] },
      { change: c, parts: [part('add', 'm2', ['z'])] },
    ]).get('add') as DeliveryRow[];
    expect(withoutRefused(rows)).toEqual({ send: rows, refused: [] });
    a.refused = { attempts: 1 };
    c.refused = { attempts: 2 };
    const { send, refused } = withoutRefused(rows);
    expect(shape(new Map([['add', send]]))).toEqual({ add: ['m1[y]<b:add y>'] });
    expect(refused).toEqual([a, c]);
    // The request's own rows are left as they were.
    expect(shape(new Map([['add', rows]]))).toEqual({ add: ['m1[x,y]<a:add x; b:add y>', 'm2[z]<c:add z>'] });
  });
});

describe('identityKey', () => {
  it('is the same for the same identity, and differs when any field does', () => {
    expect(identityKey({ thirdId: 'a' })).toBe(identityKey({ thirdId: 'a' }));
    expect(identityKey({ thirdId: 'a' })).not.toBe(identityKey({ phone: 'a' }));
    expect(identityKey({ thirdId: 'a', phone: '1' })).not.toBe(identityKey({ thirdId: 'a' }));
    expect(identityKey({ thirdId: 'a', phone: '1' })).toBe(identityKey({ phone: '1', thirdId: 'a' }));
  });
});
