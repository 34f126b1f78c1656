/**
 * The pgoutput reader against messages written by hand from the protocol's documentation (the
 * `Msg` writer below): what pg-logical-replication's parser gave the bridge before (typed values,
 * unchanged TOAST values, key-only tuples), only the selected columns, and no-op updates recognised.
 */
import { describe, expect, it } from 'vitest';
import { PgoutputReader, type ChangeMessage, type ColumnSelection } from '../../src/decode/pgoutput.js';

/** Writes pgoutput protocol messages (PostgreSQL docs, "Logical Replication Message Formats"). */
class Msg {
  private readonly parts: Buffer[] = [];
  byte(c: string | number): this {
    this.parts.push(Buffer.from([typeof c === 'number' ? c : c.charCodeAt(0)]));
    return this;
  }
  int16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    this.parts.push(b);
    return this;
  }
  int32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    this.parts.push(b);
    return this;
  }
  int64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    this.parts.push(b);
    return this;
  }
  string(s: string): this {
    this.parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }
  /** TupleData: null -> 'n', undefined -> 'u' (unchanged TOAST), a string -> 't'. */
  tuple(values: ReadonlyArray<string | null | undefined>): this {
    this.int16(values.length);
    for (const v of values) {
      if (v === null) this.byte('n');
      else if (v === undefined) this.byte('u');
      else {
        const text = Buffer.from(v, 'utf8');
        this.byte('t').int32(text.length);
        this.parts.push(text);
      }
    }
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const INT4 = 23;
const TEXT = 25;
const OID = 16384;

/** Microseconds since 2000-01-01, as the server sends timestamps. */
function pgTime(iso: string, extraMicros = 0n): bigint {
  return BigInt(Date.parse(iso) - PG_EPOCH_MS) * 1000n + extraMicros;
}

/** Relation "crm"."customer_profile" (id int4 key, "Group Names" text, phone text). */
function relationMessage(identity: 'd' | 'f' = 'd'): Buffer {
  const m = new Msg().byte('R').int32(OID).string('crm').string('customer_profile').byte(identity).int16(3);
  m.byte(1).string('id').int32(INT4).int32(-1);
  m.byte(identity === 'f' ? 1 : 0)
    .string('Group Names')
    .int32(TEXT)
    .int32(-1);
  m.byte(identity === 'f' ? 1 : 0)
    .string('phone')
    .int32(TEXT)
    .int32(-1);
  return m.build();
}

function parser(select?: ColumnSelection) {
  const reader = new PgoutputReader(select);
  return (buf: Buffer): ChangeMessage => reader.read(buf);
}

describe('PgoutputReader', () => {
  it('begin and commit: positions and commit time', () => {
    const parse = parser();
    const t = pgTime('2024-05-01T12:34:56.789Z', 456n);
    const begin = parse(new Msg().byte('B').int64(0x1500e910n).int64(t).int32(991).build());
    expect(begin).toEqual({
      tag: 'begin',
      xid: 991,
      commitLsn: 0x1500e910n,
      commitTime: new Date('2024-05-01T12:34:56.789Z'),
    });
    const commit = parse(
      new Msg()
        .byte('C')
        .byte(0)
        .int64((3n << 32n) | 0x10n)
        .int64((3n << 32n) | 0x48n)
        .int64(t)
        .build(),
    );
    expect(commit).toEqual({
      tag: 'commit',
      commitLsn: (3n << 32n) | 0x10n,
      endLsn: (3n << 32n) | 0x48n,
      commitTime: new Date('2024-05-01T12:34:56.789Z'),
    });
  });

  it('relation and insert: typed values, null columns', () => {
    const parse = parser();
    const rel = parse(relationMessage());
    expect(rel).toEqual({
      tag: 'relation',
      relation: {
        oid: OID,
        schema: 'crm',
        name: 'customer_profile',
        columns: ['id', 'Group Names', 'phone'],
        keyColumns: ['id'],
        replicaIdentity: 'default',
      },
    });
    const ins = parse(new Msg().byte('I').int32(OID).byte('N').tuple(['7', 'a,b', null]).build());
    expect(ins.tag).toBe('insert');
    if (ins.tag !== 'insert') return;
    expect({ ...ins.new }).toEqual({ id: 7, 'Group Names': 'a,b', phone: null });
    expect(rel.tag === 'relation' && ins.relation === rel.relation).toBe(true);
  });

  it("an unchanged TOAST column ('u') of an update without old tuple arrives as undefined", () => {
    const parse = parser();
    parse(relationMessage());
    const upd = parse(new Msg().byte('U').int32(OID).byte('N').tuple(['7', undefined, '555']).build());
    expect(upd.tag).toBe('update');
    if (upd.tag !== 'update') return;
    expect(upd.old).toBeNull();
    expect(upd.key).toBeNull();
    expect(Object.keys(upd.new)).toEqual(['id', 'Group Names', 'phone']);
    expect('Group Names' in upd.new).toBe(true);
    expect(upd.new['Group Names']).toBeUndefined();
    expect(upd.new.phone).toBe('555');
  });

  it("an unchanged TOAST column ('u') with a changed key: key tuple 'K', then 'N'", () => {
    const parse = parser();
    parse(relationMessage());
    const upd = parse(
      new Msg()
        .byte('U')
        .int32(OID)
        .byte('K')
        .tuple(['7', null, null])
        .byte('N')
        .tuple(['8', undefined, '5'])
        .build(),
    );
    expect(upd.tag).toBe('update');
    if (upd.tag !== 'update') return;
    expect(upd.old).toBeNull();
    expect({ ...upd.key }).toEqual({ id: 7 });
    expect({ ...upd.new }).toEqual({ id: 8, 'Group Names': undefined, phone: '5' });
    expect(upd.new['Group Names']).toBeUndefined();
  });

  it("REPLICA IDENTITY FULL: old tuple 'O' fills an unchanged TOAST column of the new tuple", () => {
    const parse = parser();
    parse(relationMessage('f'));
    const upd = parse(
      new Msg()
        .byte('U')
        .int32(OID)
        .byte('O')
        .tuple(['7', 'big,list', '1'])
        .byte('N')
        .tuple(['7', undefined, '2'])
        .build(),
    );
    expect(upd.tag).toBe('update');
    if (upd.tag !== 'update') return;
    expect(upd.relation.replicaIdentity).toBe('full');
    expect(upd.relation.keyColumns).toEqual(['id', 'Group Names', 'phone']);
    expect({ ...upd.old }).toEqual({ id: 7, 'Group Names': 'big,list', phone: '1' });
    expect({ ...upd.new }).toEqual({ id: 7, 'Group Names': 'big,list', phone: '2' });
  });

  it('delete with REPLICA IDENTITY DEFAULT carries only the key', () => {
    const parse = parser();
    parse(relationMessage());
    const del = parse(new Msg().byte('D').int32(OID).byte('K').tuple(['7', null, null]).build());
    expect(del.tag).toBe('delete');
    if (del.tag !== 'delete') return;
    expect(del.old).toBeNull();
    expect({ ...del.key }).toEqual({ id: 7 });
    expect(del.key && 'phone' in del.key).toBe(false);
  });

  it("columns named like Object's members are columns only, and a key-only tuple holds nothing else", () => {
    const parse = parser();
    const rel = new Msg().byte('R').int32(OID).string('crm').string('odd').byte('d').int16(3);
    rel.byte(1).string('constructor').int32(TEXT).int32(-1);
    rel.byte(0).string('__proto__').int32(TEXT).int32(-1);
    rel.byte(0).string('toString').int32(TEXT).int32(-1);
    parse(rel.build());
    const ins = parse(new Msg().byte('I').int32(OID).byte('N').tuple(['k1', 'p', 't']).build());
    if (ins.tag !== 'insert') throw new Error(ins.tag);
    expect(Object.entries(ins.new)).toEqual([
      ['constructor', 'k1'],
      ['__proto__', 'p'],
      ['toString', 't'],
    ]);
    const del = parse(new Msg().byte('D').int32(OID).byte('K').tuple(['k1', null, null]).build());
    if (del.tag !== 'delete' || !del.key) throw new Error(del.tag);
    expect(Object.entries(del.key)).toEqual([['constructor', 'k1']]);
    // Nothing inherited: a column the tuple lacks is not `in` it.
    for (const c of ['__proto__', 'toString', 'hasOwnProperty', 'valueOf']) expect(c in del.key).toBe(false);
  });

  it('truncate names its relations', () => {
    const parse = parser();
    parse(relationMessage());
    const tr = parse(new Msg().byte('T').int32(1).byte(0).int32(OID).build());
    expect(tr.tag).toBe('truncate');
    expect(tr.tag === 'truncate' && tr.relations.map((r: { oid: number }) => r.oid)).toEqual([OID]);
  });

  it('origin and type messages become other', () => {
    const parse = parser();
    expect(parse(new Msg().byte('O').int64(0x10n).string('node1').build())).toEqual({ tag: 'other' });
    expect(parse(new Msg().byte('Y').int32(90000).string('public').string('mood').build())).toEqual({
      tag: 'other',
    });
  });
});

describe('PgoutputReader: only the columns the sources read', () => {
  const only =
    (...cols: string[]): ColumnSelection =>
    (rel) =>
      rel.name === 'customer_profile' ? cols : undefined;
  const update = (
    old: ReadonlyArray<string | null | undefined>,
    next: ReadonlyArray<string | null | undefined>,
  ) => new Msg().byte('U').int32(OID).byte('O').tuple(old).byte('N').tuple(next).build();

  it('decodes the selected columns only, and nothing of a table no source reads', () => {
    const parse = parser(only('id', 'Group Names'));
    parse(relationMessage());
    const ins = parse(new Msg().byte('I').int32(OID).byte('N').tuple(['7', 'a,b', '555']).build());
    expect(ins.tag === 'insert' && { ...ins.new }).toEqual({ id: 7, 'Group Names': 'a,b' });
    const none = parser(() => undefined);
    const rel = none(relationMessage());
    // The relation message still says everything (the router checks the mapped columns are there).
    expect(rel.tag === 'relation' && rel.relation.columns).toEqual(['id', 'Group Names', 'phone']);
    expect(none(new Msg().byte('I').int32(OID).byte('N').tuple(['7', 'a', '5']).build())).toEqual({
      tag: 'other',
    });
    expect(none(update(['7', 'a', '5'], ['7', 'b', '5']))).toEqual({ tag: 'other' });
    expect(none(new Msg().byte('D').int32(OID).byte('K').tuple(['7', null, null]).build())).toEqual({
      tag: 'other',
    });
  });

  it('an update whose selected columns keep their bytes is unchanged, whatever else changed', () => {
    const parse = parser(only('id', 'Group Names'));
    parse(relationMessage('f'));
    const same = parse(update(['7', 'a,b', '1'], ['7', 'a,b', '2']));
    expect(same).toMatchObject({ tag: 'unchanged', relation: { name: 'customer_profile' } });
    // An unchanged TOAST value in the new row is the old one.
    expect(parse(update(['7', 'a,b', '1'], ['7', undefined, '2'])).tag).toBe('unchanged');
    expect(parse(update(['7', null, '1'], ['7', null, '2'])).tag).toBe('unchanged');
  });

  it('any difference in a selected column, or an old value not known, makes it an update', () => {
    const parse = parser(only('id', 'Group Names'));
    parse(relationMessage('f'));
    for (const [old, next] of [
      [
        ['7', 'a,b', '1'],
        ['7', 'a,c', '1'],
      ],
      [
        ['7', 'a,b', '1'],
        ['7', 'a,bc', '1'],
      ],
      [
        ['7', 'a,b', '1'],
        ['7', null, '1'],
      ],
      [
        ['7', '', '1'],
        ['7', null, '1'],
      ],
      [
        ['7', 'a,b', '1'],
        ['8', 'a,b', '1'],
      ],
      [
        ['7', undefined, '1'],
        ['7', undefined, '1'],
      ],
    ] as const) {
      const msg = parse(update(old, next));
      expect(msg.tag, `${JSON.stringify(old)} -> ${JSON.stringify(next)}`).toBe('update');
    }
    const changed = parse(update(['7', 'a,b', '1'], ['7', 'b,a', '2']));
    expect(changed.tag === 'update' && [{ ...changed.old }, { ...changed.new }]).toEqual([
      { id: 7, 'Group Names': 'a,b' },
      { id: 7, 'Group Names': 'b,a' },
    ]);
  });

  it('a key-only tuple gives only the selected key columns', () => {
    const parse = parser(only('id', 'phone'));
    parse(relationMessage());
    const del = parse(new Msg().byte('D').int32(OID).byte('K').tuple(['7', null, null]).build());
    expect(del.tag === 'delete' && del.key && { ...del.key }).toEqual({ id: 7 });
  });

  it('watermark messages, and a row of an unknown relation is an error', () => {
    const parse = parser(only('id'));
    const m = new Msg().byte('M').byte(1).int64(0x10n).string('tuzhan-cdc');
    const content = Buffer.from('{"w":"1","mark":"low"}');
    m.int32(content.length);
    expect(parse(Buffer.concat([m.build(), content]))).toEqual({
      tag: 'message',
      transactional: true,
      prefix: 'tuzhan-cdc',
      content: '{"w":"1","mark":"low"}',
    });
    expect(() => parse(new Msg().byte('I').int32(99).byte('N').tuple(['1']).build())).toThrow(/relation 99/);
  });
});
