import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load-config.js';
import type { SourceConfig } from '../../src/config/types.js';
import type { Relation, Row } from '../../src/decode/pgoutput.js';
import { toSourceChanges, type RowMessage } from '../../src/mapping/changes.js';
import { canonicalJson, identityValue, parseGroups, SourceMapper } from '../../src/mapping/source-mapper.js';
import { sameIdentity } from '../../src/domain/change.js';

function source(over: Partial<SourceConfig> = {}): SourceConfig {
  return {
    name: 'profiles',
    table: 'crm.customer_profile',
    schema: 'crm',
    tableName: 'customer_profile',
    mode: 'row',
    columns: { thirdId: 'cust_no', phone: 'Mobile', groups: 'Group Names' },
    match: { isMatching: false },
    deleteLookup: 'none',
    onTruncate: 'ignore',
    guard: { maxRemovals: { kind: 'default' } },
    ...over,
  };
}

const relation: Relation = {
  oid: 1,
  schema: 'crm',
  name: 'customer_profile',
  columns: ['id', 'cust_no', 'Mobile', 'Group Names', 'status'],
  keyColumns: ['id'],
  replicaIdentity: 'default',
};

function row(over: Row = {}): Row {
  return { id: 1, cust_no: 'C1', Mobile: '13800000000', 'Group Names': 'vip,new', status: 'active', ...over };
}

describe('parseGroups', () => {
  it('splits text on commas, trims, drops empty names and duplicates, keeps order', () => {
    expect(parseGroups('a, b,,a')).toEqual(['a', 'b']);
    expect(parseGroups(' 老客户 ,vip ')).toEqual(['老客户', 'vip']);
    expect(parseGroups('')).toEqual([]);
    expect(parseGroups(' , ')).toEqual([]);
  });

  it('takes text[] arrays element by element (no splitting inside elements)', () => {
    expect(parseGroups(['b', 'a', 'b'])).toEqual(['b', 'a']);
    expect(parseGroups(['x', null, ' y ', ''])).toEqual(['x', 'y']);
    expect(parseGroups([])).toEqual([]);
  });

  it('null is no groups; undefined (unchanged TOAST) is unknown', () => {
    expect(parseGroups(null)).toEqual([]);
    expect(parseGroups(undefined)).toBeNull();
  });

  it('agrees with split-trim-dedupe on any text, including long lists with repeats', () => {
    const reference = (text: string): string[] => [
      ...new Set(
        text
          .split(',')
          .map((g) => g.trim())
          .filter((g) => g !== ''),
      ),
    ];
    const name = fc.constantFrom('a', 'b', ' a', 'b ', '', ' ', '\t', '老客户', 'vip', 'g1', 'g2', 'g3');
    const many = fc.array(
      fc.oneof(
        name,
        fc.nat(40).map((n) => `n${n}`),
      ),
      { maxLength: 80, size: 'max' },
    );
    fc.assert(
      fc.property(many, (names) => {
        const text = names.join(',');
        expect(parseGroups(text)).toEqual(reference(text));
      }),
      { numRuns: 500 },
    );
    const long = Array.from({ length: 20 }, (_, i) => `g${i}`);
    expect(parseGroups([...long, 'g0', 'g19', 'g20'].join(','))).toEqual([...long, 'g20']);
  });
});

describe('identityValue', () => {
  it('turns numbers and bigints into text', () => {
    expect(identityValue(42)).toBe('42');
    expect(identityValue(0)).toBe('0');
    expect(identityValue(12345678901234567890n)).toBe('12345678901234567890');
    expect(identityValue('9007199254740993')).toBe('9007199254740993');
  });

  it('trims; empty, whitespace, null and undefined are absent', () => {
    expect(identityValue('  C1 ')).toBe('C1');
    expect(identityValue('')).toBeUndefined();
    expect(identityValue(' \t ')).toBeUndefined();
    expect(identityValue(null)).toBeUndefined();
    expect(identityValue(undefined)).toBeUndefined();
  });

  it('formats dates as ISO text', () => {
    expect(identityValue(new Date('2024-01-02T03:04:05.000Z'))).toBe('2024-01-02T03:04:05.000Z');
  });
});

describe('SourceMapper.image', () => {
  it('row mode: mapped identities and the groups column', () => {
    const m = new SourceMapper(source(), ['id']);
    expect(m.image(row())).toEqual({
      identity: { thirdId: 'C1', phone: '13800000000' },
      groups: ['vip', 'new'],
    });
  });

  it('leaves out empty identities and unmapped columns', () => {
    const m = new SourceMapper(source(), ['id']);
    // wx_openid is in the row but not mapped: never part of the identity.
    expect(m.image(row({ Mobile: ' ', wx_openid: 'o1' }))).toEqual({
      identity: { thirdId: 'C1' },
      groups: ['vip', 'new'],
    });
  });

  it('row mode: unchanged TOAST groups are null, SQL NULL groups are empty', () => {
    const m = new SourceMapper(source(), ['id']);
    expect(m.image(row({ 'Group Names': undefined })).groups).toBeNull();
    const empty = m.image(row({ 'Group Names': null }));
    expect(empty.groups).toEqual([]);
    expect(empty.error).toBeUndefined();
  });

  it('membership mode: the group column is one group name', () => {
    const m = new SourceMapper(
      source({ mode: 'membership', columns: { thirdId: 'member_id', groups: 'group_name' } }),
      ['member_id', 'group_name'],
    );
    expect(m.image({ member_id: 7, group_name: ' 老客户 ' })).toEqual({
      identity: { thirdId: '7' },
      groups: ['老客户'],
    });
    expect(m.image({ member_id: 7, group_name: undefined }).groups).toBeNull();
  });

  it('a group name with a comma fails the row (the platform would split it), identity kept', () => {
    const m = new SourceMapper(
      source({ mode: 'membership', columns: { thirdId: 'member_id', groups: 'group_name' } }),
      ['member_id', 'group_name'],
    );
    const img = m.image({ member_id: 7, group_name: ' with,comma ' });
    expect(img.identity).toEqual({ thirdId: '7' });
    expect(img.groupsError).toBe(true);
    expect(img.error).toBe(
      'group name "with,comma" contains a comma, which the platform\'s groups field cannot carry (it would become 2 groups); rename the group',
    );
    // Row mode: a text column is a comma-separated list by definition; a text[] element is one name.
    const r = new SourceMapper(source(), ['id']);
    expect(r.image(row({ 'Group Names': 'VIP, Gold' })).groups).toEqual(['VIP', 'Gold']);
    const arr = r.image(row({ 'Group Names': ['north', 'VIP, Gold'] }));
    expect(arr.error).toContain('group name "VIP, Gold" contains a comma');
    expect(arr.groupsError).toBe(true);
    expect(r.image(row({ 'Group Names': ['north', ' VIP Gold '] })).error).toBeUndefined();
  });

  it('error: no identity value at all, naming the columns', () => {
    const m = new SourceMapper(source(), ['id']);
    const img = m.image(row({ cust_no: null, Mobile: '' }));
    expect(img.identity).toEqual({});
    expect(img.error).toBe('no identity value: all of thirdId (cust_no), phone (Mobile) are empty');
  });

  it('error: exact matching by an identity the row lacks', () => {
    const m = new SourceMapper(
      source({ match: { isMatching: true, matchingType: 1, identityType: 'phone' } }),
      ['id'],
    );
    expect(m.image(row()).error).toBeUndefined();
    const img = m.image(row({ Mobile: null }));
    expect(img.identity).toEqual({ thirdId: 'C1' });
    expect(img.error).toBe('exact matching by phone, but phone (Mobile) is empty');
  });

  it('error: a membership row without a group', () => {
    const m = new SourceMapper(
      source({ mode: 'membership', columns: { thirdId: 'member_id', groups: 'group_name' } }),
      ['id'],
    );
    expect(m.image({ id: 1, member_id: 'M', group_name: null }).error).toBe(
      'membership row without a group (group_name is empty)',
    );
    expect(m.image({ id: 1, member_id: 'M', group_name: '  ' }).error).toMatch(/without a group/);
  });

  it('reads every column it needs, once', () => {
    const m = new SourceMapper(source({ where: { status: 'active', cust_no: 'x' } }), ['id']);
    expect(m.identityFields).toEqual(['thirdId', 'phone']);
    expect(m.columns).toEqual(['id', 'cust_no', 'Mobile', 'Group Names', 'status']);
    expect(m.isComplete(row())).toBe(true);
    expect(m.isComplete({ id: 1 })).toBe(false);
  });

  it('works on a SourceConfig built by loadConfig', () => {
    const config = loadConfig({
      env: {},
      text: stringify({
        postgres: { url: 'postgres://u@h/db' },
        tuzhan: { token: 't' },
        sources: [
          {
            name: 'm',
            table: '"Crm"."Member Group"',
            mode: 'membership',
            columns: { unionid: 'Union ID', groups: 'group' },
            match: { isMatching: true, matchingType: 2, identifyWay: 1 },
          },
        ],
      }),
    });
    const src = config.sources[0] as SourceConfig;
    const m = new SourceMapper(src, ['Union ID', 'group']);
    expect(m.image({ 'Union ID': 'u1', group: 'g' })).toEqual({ identity: { unionid: 'u1' }, groups: ['g'] });
    expect(m.keyOf({ 'Union ID': 'u1', group: 'g' })?.text).toBe('{"group":"g","Union ID":"u1"}');
  });
});

describe('keyOf and canonicalJson', () => {
  it("orders keys like jsonb: byte length, then bytes (PostgreSQL's own output)", () => {
    // SELECT '{"id":1,"a":2,"bb":3,"é":4,"Z":6,"ab":7}'::jsonb on PostgreSQL 15 prints
    // {"Z": 6, "a": 2, "ab": 7, "bb": 3, "id": 1, "é": 4}
    const pg = '{"Z": 6, "a": 2, "ab": 7, "bb": 3, "id": 1, "é": 4}';
    expect(canonicalJson({ id: 1, a: 2, bb: 3, é: 4, Z: 6, ab: 7 })).toBe(
      pg.replace(/: /g, ':').replace(/, /g, ','),
    );
    // {"ID": 1, "Id": 3, "id": 2}: upper case sorts before lower case (bytes, not collation).
    expect(canonicalJson({ id: 2, Id: 3, ID: 1 })).toBe('{"ID":1,"Id":3,"id":2}');
  });

  it("keeps jsonb's order with integer-like names, which a JavaScript object would put first", () => {
    // SELECT '{"10": 5, "a": 2}'::jsonb prints {"a": 2, "10": 5}; '{"0": false, " ": ""}'::jsonb
    // prints {" ": "", "0": false} (same length: bytes, and " " is 0x20 < "0" 0x30).
    expect(canonicalJson({ a: 2, '10': 5 })).toBe('{"a":2,"10":5}');
    expect(canonicalJson({ '0': false, ' ': '' })).toBe('{" ":"","0":false}');
    expect(canonicalJson({ '2': 'x', '1': null, b: 1 })).toBe('{"1":null,"2":"x","b":1}');
  });

  it('is independent of column order in the tuple and in the key', () => {
    const m1 = new SourceMapper(source(), ['tenant', 'id']);
    const m2 = new SourceMapper(source(), ['id', 'tenant']);
    const k1 = m1.keyOf({ id: 5, tenant: 'acme', cust_no: 'x' });
    const k2 = m2.keyOf({ tenant: 'acme', id: 5 });
    expect(k1).toEqual({ text: '{"id":5,"tenant":"acme"}', values: { tenant: 'acme', id: 5 } });
    expect(k2?.text).toBe(k1?.text);
  });

  it('null when a key column is missing (or an unchanged TOAST value); SQL NULL is a value', () => {
    const m = new SourceMapper(source(), ['tenant', 'id']);
    expect(m.keyOf({ id: 5 })).toBeNull();
    expect(m.keyOf({ id: 5, tenant: undefined })).toBeNull();
    expect(m.keyOf({ id: 5, tenant: null })?.text).toBe('{"id":5,"tenant":null}');
  });
});

describe('SourceMapper.passes', () => {
  const m = (where: SourceConfig['where']) => new SourceMapper(source({ where }), ['id']);

  it('no filter: every row passes', () => {
    expect(m(undefined).passes({})).toBe(true);
  });

  it('equality, compared as text', () => {
    const f = m({ status: 'active', tier: 2 });
    expect(f.passes(row({ tier: 2 }))).toBe(true);
    expect(f.passes(row({ tier: '2' }))).toBe(true);
    expect(f.passes(row({ tier: 3 }))).toBe(false);
    expect(f.passes(row({ status: 'gone', tier: 2 }))).toBe(false);
    expect(m({ active: true }).passes({ active: true })).toBe(true);
    expect(m({ active: true }).passes({ active: false })).toBe(false);
  });

  it('a list means any of', () => {
    const f = m({ status: ['active', 'trial'] });
    expect(f.passes(row({ status: 'trial' }))).toBe(true);
    expect(f.passes(row({ status: 'gone' }))).toBe(false);
    expect(f.passes(row({ status: null }))).toBe(false);
  });

  it('null means IS NULL, and never equals a non-null filter value', () => {
    const f = m({ deleted_at: null });
    expect(f.passes({ deleted_at: null })).toBe(true);
    expect(f.passes({ deleted_at: '2024-01-01' })).toBe(false);
    expect(m({ status: 'null' }).passes({ status: null })).toBe(false);
    expect(m({ status: ['a', null] }).passes({ status: null })).toBe(true);
  });

  it('undefined when a filter column is not in the tuple', () => {
    const f = m({ status: 'active' });
    expect(f.passes({ id: 1 })).toBeUndefined();
    expect(f.passes({ id: 1, status: undefined })).toBeUndefined();
  });
});

describe('identity helpers', () => {
  it('sameIdentity compares every field', () => {
    expect(sameIdentity({ thirdId: 'a', phone: '1' }, { phone: '1', thirdId: 'a' })).toBe(true);
    expect(sameIdentity({ thirdId: 'a' }, { thirdId: 'a', phone: '1' })).toBe(false);
    expect(sameIdentity({ thirdId: 'a' }, { thirdId: 'b' })).toBe(false);
  });
});

describe('toSourceChanges', () => {
  const mapper = (over: Partial<SourceConfig> = {}) => new SourceMapper(source(over), ['id']);
  const insert = (n: Row): RowMessage => ({ tag: 'insert', relation, new: n });
  const update = (n: Row, old: Row | null = null, key: Row | null = null): RowMessage => ({
    tag: 'update',
    relation,
    old,
    key,
    new: n,
  });
  const del = (old: Row | null, key: Row | null): RowMessage => ({ tag: 'delete', relation, old, key });

  it('insert: no before, the new image after', () => {
    expect(toSourceChanges(mapper(), insert(row()))).toEqual([
      {
        kind: 'insert',
        key: { text: '{"id":1}', values: { id: 1 } },
        before: null,
        after: { identity: { thirdId: 'C1', phone: '13800000000' }, groups: ['vip', 'new'] },
      },
    ]);
  });

  it('update of the same key with a full old tuple: before is the old image', () => {
    const out = toSourceChanges(mapper(), update(row({ 'Group Names': 'vip' }), row()));
    expect(out).toEqual([
      {
        kind: 'update',
        key: { text: '{"id":1}', values: { id: 1 } },
        before: { identity: { thirdId: 'C1', phone: '13800000000' }, groups: ['vip', 'new'] },
        after: { identity: { thirdId: 'C1', phone: '13800000000' }, groups: ['vip'] },
      },
    ]);
  });

  it("update without the old row: before is 'lookup' in row mode or with deleteLookup: state, else 'unknown'", () => {
    const msg = update(row({ 'Group Names': 'x' }));
    expect(toSourceChanges(mapper({ deleteLookup: 'state' }), msg)).toMatchObject([
      { kind: 'update', before: 'lookup' },
    ]);
    // Row mode removes only the groups the row held: what the bridge recorded as sent says which.
    expect(toSourceChanges(mapper(), msg)).toMatchObject([{ kind: 'update', before: 'lookup' }]);
    expect(toSourceChanges(mapper({ mode: 'membership' }), msg)).toMatchObject([
      { kind: 'update', before: 'unknown' },
    ]);
    // An old row without the groups does not say what to remove either.
    const { 'Group Names': _g, ...noGroups } = row();
    expect(toSourceChanges(mapper(), update(row(), noGroups))).toMatchObject([{ before: 'lookup' }]);
    // A key-only old tuple is not an old row either.
    expect(toSourceChanges(mapper({ deleteLookup: 'state' }), update(row(), { id: 1 }))).toMatchObject([
      { kind: 'update', before: 'lookup' },
    ]);
  });

  it('update with unchanged TOAST groups: after.groups is null (resolved later), never []', () => {
    const [c] = toSourceChanges(mapper(), update(row({ 'Group Names': undefined }))) as Array<{
      after: { groups: unknown };
    }>;
    expect(c?.after.groups).toBeNull();
  });

  it('a key change is a delete of the old key and an insert of the new one', () => {
    const out = toSourceChanges(mapper(), update(row({ id: 2 }), null, { id: 1 }));
    expect(out).toEqual([
      { kind: 'delete', key: { text: '{"id":1}', values: { id: 1 } }, before: 'lookup', after: null },
      {
        kind: 'insert',
        key: { text: '{"id":2}', values: { id: 2 } },
        before: null,
        after: { identity: { thirdId: 'C1', phone: '13800000000' }, groups: ['vip', 'new'] },
      },
    ]);
    const full = toSourceChanges(mapper({ deleteLookup: 'state' }), update(row({ id: 2 }), row({ id: 1 })));
    expect(full).toMatchObject([
      { kind: 'delete', key: { text: '{"id":1}' }, before: { identity: { thirdId: 'C1' } } },
      { kind: 'insert', key: { text: '{"id":2}' }, before: null },
    ]);
    const keyOnly = toSourceChanges(
      mapper({ deleteLookup: 'state' }),
      update(row({ id: 2 }), null, { id: 1 }),
    );
    expect(keyOnly).toMatchObject([{ kind: 'delete', before: 'lookup' }, { kind: 'insert' }]);
  });

  it('delete with only the key: lookup (row mode, deleteLookup) or unknown; with the full old row: its image', () => {
    expect(toSourceChanges(mapper({ deleteLookup: 'state' }), del(null, { id: 1 }))).toEqual([
      { kind: 'delete', key: { text: '{"id":1}', values: { id: 1 } }, before: 'lookup', after: null },
    ]);
    expect(toSourceChanges(mapper(), del(null, { id: 1 }))).toMatchObject([
      { kind: 'delete', before: 'lookup' },
    ]);
    expect(toSourceChanges(mapper({ mode: 'membership' }), del(null, { id: 1 }))).toMatchObject([
      { kind: 'delete', before: 'unknown' },
    ]);
    expect(toSourceChanges(mapper(), del(row(), null))).toMatchObject([
      { kind: 'delete', before: { identity: { thirdId: 'C1' }, groups: ['vip', 'new'] }, after: null },
    ]);
  });

  it('filter transitions: leaving the filter -> after null; entering -> before null', () => {
    const f = mapper({ where: { status: 'active' } });
    const leaving = toSourceChanges(f, update(row({ status: 'closed' }), row()));
    expect(leaving).toMatchObject([{ kind: 'update', before: { groups: ['vip', 'new'] }, after: null }]);
    const entering = toSourceChanges(f, update(row(), row({ status: 'closed' })));
    expect(entering).toMatchObject([{ kind: 'update', before: null, after: { groups: ['vip', 'new'] } }]);
    // Outside the filter before and after: nothing to send and no outcome to record.
    expect(toSourceChanges(f, insert(row({ status: 'closed' })))).toEqual([]);
    expect(toSourceChanges(f, del(row({ status: 'closed' }), null))).toEqual([]);
  });

  it('a key change across the filter: only the side inside it is a change', () => {
    const f = mapper({ where: { status: 'active' } });
    const image = { identity: { thirdId: 'C1', phone: '13800000000' }, groups: ['vip', 'new'] };
    // Old key outside the filter, new key inside: the old key means nothing to the platform.
    expect(toSourceChanges(f, update(row({ id: 2 }), row({ status: 'closed' })))).toEqual([
      { kind: 'insert', key: { text: '{"id":2}', values: { id: 2 } }, before: null, after: image },
    ]);
    // Old key inside, new key outside: only the delete of the old key.
    expect(toSourceChanges(f, update(row({ id: 2, status: 'closed' }), row()))).toEqual([
      { kind: 'delete', key: { text: '{"id":1}', values: { id: 1 } }, before: image, after: null },
    ]);
  });

  it('reports rows without a key', () => {
    expect(toSourceChanges(mapper(), insert({ cust_no: 'C1' }))).toEqual({
      error: 'inserted row lacks a key column',
    });
    expect(toSourceChanges(mapper(), update({ cust_no: 'C1' }))).toEqual({
      error: 'updated row lacks a key column',
    });
    expect(toSourceChanges(mapper(), del(null, null))).toEqual({
      error: 'deleted row carries no key (REPLICA IDENTITY NOTHING?)',
    });
  });
});

/**
 * A membership table whose primary key is (member_id, group_name), REPLICA IDENTITY DEFAULT: the
 * startup check accepts it ("REPLICA IDENTITY DEFAULT carries the mapped columns"), and a DELETE's
 * key tuple ('K') does hold every column the source needs. `old` (null
 * here) was once the only source of the row before the change, so such a delete was recorded as
 * failed ("the old row is not in the WAL") instead of removing the group: `before` now comes from
 * `old ?? key` whenever that tuple holds every column the source reads.
 */
describe('toSourceChanges: replica identity carrying every mapped column (composite primary key)', () => {
  const membership = new SourceMapper(
    source({ mode: 'membership', columns: { thirdId: 'member_id', groups: 'group_name' } }),
    ['member_id', 'group_name'],
  );
  const rel: Relation = {
    oid: 2,
    schema: 'crm',
    name: 'member_group',
    columns: ['member_id', 'group_name', 'joined_at'],
    keyColumns: ['member_id', 'group_name'],
    replicaIdentity: 'default',
  };
  const keyTuple = { member_id: 'M1', group_name: 'gold' };

  it('delete: before is the image of the key tuple ', () => {
    const out = toSourceChanges(membership, { tag: 'delete', relation: rel, old: null, key: keyTuple });
    expect(out).toEqual([
      {
        kind: 'delete',
        key: { text: '{"member_id":"M1","group_name":"gold"}', values: keyTuple },
        before: { identity: { thirdId: 'M1' }, groups: ['gold'] },
        after: null,
      },
    ]);
  });

  it('key-changing update: the delete of the old pair uses the key tuple ', () => {
    const out = toSourceChanges(membership, {
      tag: 'update',
      relation: rel,
      old: null,
      key: keyTuple,
      new: { member_id: 'M1', group_name: 'silver', joined_at: null },
    });
    expect(out).toMatchObject([
      { kind: 'delete', before: { identity: { thirdId: 'M1' }, groups: ['gold'] } },
      { kind: 'insert', after: { groups: ['silver'] } },
    ]);
  });
});
