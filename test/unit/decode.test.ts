import { PgoutputPlugin } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { decodeMessage, type ChangeMessage } from '../../src/decode/pgoutput.js';

type LibMessage = Parameters<typeof decodeMessage>[0];

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

function parser() {
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
  return (buf: Buffer): ChangeMessage => decodeMessage(plugin.parse(buf) as unknown as LibMessage);
}

describe('decodeMessage on library-shaped messages', () => {
  const libRelation = {
    tag: 'relation',
    relationOid: 42,
    schema: 'Crm',
    name: 'Member Group',
    replicaIdentity: 'default',
    columns: [{ name: 'id' }, { name: 'grp' }],
    keyColumns: ['id'],
  };

  it('begin: zero-padded LSN -> bigint, microseconds -> Date', () => {
    const micros = BigInt(Date.parse('2024-05-01T12:34:56.789Z')) * 1000n + 123n;
    const out = decodeMessage({ tag: 'begin', commitLsn: '00000001/1500E910', commitTime: micros, xid: 777 });
    expect(out).toEqual({
      tag: 'begin',
      xid: 777,
      commitLsn: (1n << 32n) | 0x1500e910n,
      commitTime: new Date('2024-05-01T12:34:56.789Z'),
    });
  });

  it('commit: commit and end LSN', () => {
    const out = decodeMessage({
      tag: 'commit',
      flags: 0,
      commitLsn: '00000000/1500E910',
      commitEndLsn: '00000000/1500E940',
      commitTime: 1_700_000_000_000_000n,
    });
    expect(out).toEqual({
      tag: 'commit',
      commitLsn: 0x1500e910n,
      endLsn: 0x1500e940n,
      commitTime: new Date(1_700_000_000_000),
    });
  });

  it('relation: column names, key columns, replica identity', () => {
    const out = decodeMessage(libRelation);
    expect(out).toEqual({
      tag: 'relation',
      relation: {
        oid: 42,
        schema: 'Crm',
        name: 'Member Group',
        columns: ['id', 'grp'],
        keyColumns: ['id'],
        replicaIdentity: 'default',
      },
    });
  });

  it('row messages share the relation object of the relation message', () => {
    const rel = decodeMessage(libRelation);
    const ins = decodeMessage({ tag: 'insert', relation: libRelation, new: { id: 1, grp: 'a' } });
    expect(ins.tag === 'insert' && rel.tag === 'relation' && ins.relation === rel.relation).toBe(true);
  });

  it('insert, update (old / key / neither), delete (key-only)', () => {
    expect(decodeMessage({ tag: 'insert', relation: libRelation, new: { id: 1, grp: 'a' } })).toMatchObject({
      tag: 'insert',
      relation: { oid: 42 },
      new: { id: 1, grp: 'a' },
    });
    expect(
      decodeMessage({
        tag: 'update',
        relation: libRelation,
        key: null,
        old: { id: 1, grp: 'a' },
        new: { id: 1, grp: 'b' },
      }),
    ).toMatchObject({ tag: 'update', old: { id: 1, grp: 'a' }, key: null, new: { id: 1, grp: 'b' } });
    expect(
      decodeMessage({
        tag: 'update',
        relation: libRelation,
        key: { id: 1 },
        old: null,
        new: { id: 2, grp: 'b' },
      }),
    ).toMatchObject({ tag: 'update', old: null, key: { id: 1 }, new: { id: 2, grp: 'b' } });
    // Properties the library leaves out become null, never undefined.
    const plain = decodeMessage({ tag: 'update', relation: libRelation, new: { id: 1, grp: 'c' } });
    expect(plain).toMatchObject({ tag: 'update', old: null, key: null });
    expect(decodeMessage({ tag: 'delete', relation: libRelation, key: { id: 1 }, old: null })).toMatchObject({
      tag: 'delete',
      key: { id: 1 },
      old: null,
    });
  });

  it('truncate: the relations, skipping ones the library did not know', () => {
    const out = decodeMessage({
      tag: 'truncate',
      cascade: false,
      restartIdentity: false,
      relations: [libRelation, undefined],
    });
    expect(out.tag).toBe('truncate');
    expect(out.tag === 'truncate' && out.relations.map((r) => `${r.schema}.${r.name}`)).toEqual([
      'Crm.Member Group',
    ]);
  });

  it('unknown tags become other', () => {
    expect(decodeMessage({ tag: 'origin', originLsn: '0/1', originName: 'x' })).toEqual({ tag: 'other' });
    expect(decodeMessage({ tag: 'type', typeOid: 1 })).toEqual({ tag: 'other' });
  });

  it('logical decoding messages (the bridge watermarks) carry their prefix and text', () => {
    expect(
      decodeMessage({
        tag: 'message',
        transactional: true,
        prefix: 'tuzhan-cdc',
        content: Buffer.from('{"w":"1"}'),
      }),
    ).toEqual({ tag: 'message', transactional: true, prefix: 'tuzhan-cdc', content: '{"w":"1"}' });
  });
});

describe('decodeMessage on binary pgoutput parsed by PgoutputPlugin', () => {
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

  it('truncate names its relations', () => {
    const parse = parser();
    parse(relationMessage());
    const tr = parse(new Msg().byte('T').int32(1).byte(0).int32(OID).build());
    expect(tr.tag).toBe('truncate');
    expect(tr.tag === 'truncate' && tr.relations.map((r) => r.oid)).toEqual([OID]);
  });

  it('origin and type messages become other', () => {
    const parse = parser();
    expect(parse(new Msg().byte('O').int64(0x10n).string('node1').build())).toEqual({ tag: 'other' });
    expect(parse(new Msg().byte('Y').int32(90000).string('public').string('mood').build())).toEqual({
      tag: 'other',
    });
  });
});
