/**
 * pgoutput messages (protocol version 1; PostgreSQL docs, "Logical Replication Message Formats")
 * read straight from the XLogData payload into the bridge's change messages. Only the columns the
 * sources read are decoded (`ColumnSelection`): a CRM table's other columns (addresses, points,
 * last login) are skipped over, never turned into strings. An UPDATE whose old row is in the WAL and
 * whose decoded columns hold the same bytes before and after is recognised before anything is
 * decoded (`unchanged`). LSNs become bigints, commit times Dates, unchanged TOAST values stay
 * `undefined`, other values go through pg's type parsers (as pg-logical-replication's parser did,
 * so keys read the same). Pure: no I/O.
 */
import pg from 'pg';

/** A decoded tuple. `undefined` means "unchanged TOAST value, not sent by the server". */
export type Row = Record<string, unknown>;

export interface Relation {
  oid: number;
  schema: string;
  name: string;
  columns: readonly string[];
  /** Columns of the replica identity (all columns with REPLICA IDENTITY FULL). */
  keyColumns: readonly string[];
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
}

export type ChangeMessage =
  | { tag: 'begin'; xid: number; commitLsn: bigint; commitTime: Date }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint; commitTime: Date }
  | { tag: 'relation'; relation: Relation }
  | { tag: 'insert'; relation: Relation; new: Row }
  /** `old` is the full old tuple (REPLICA IDENTITY FULL); `key` the old key when it changed. */
  | { tag: 'update'; relation: Relation; old: Row | null; key: Row | null; new: Row }
  /** An UPDATE that left every decoded column as it was (byte for byte, old row in the WAL). */
  | { tag: 'unchanged'; relation: Relation }
  | { tag: 'delete'; relation: Relation; old: Row | null; key: Row | null }
  | { tag: 'truncate'; relations: Relation[] }
  /** A logical decoding message (`pg_logical_emit_message`): the bridge's own watermarks. */
  | { tag: 'message'; transactional: boolean; prefix: string; content: string }
  | { tag: 'other' };

/**
 * The columns to decode for a relation, or undefined for a table no source reads (its row messages
 * then come out as `other`).
 */
export type ColumnSelection = (relation: Relation) => readonly string[] | undefined;

type Parse = (text: string) => unknown;

/** What to do with a relation's columns, worked out once per relation message. */
interface Plan {
  relation: Relation;
  /** Per column: its name if it is decoded. */
  names: Array<string | undefined>;
  parsers: Parse[];
  /** Per column: part of the replica identity ('K' tuples carry only those). */
  key: boolean[];
  decoded: boolean;
  /** Per column, reused: the kind, start and end of the old tuple's value (for `unchanged`). */
  kinds: Uint8Array;
  starts: Uint32Array;
  ends: Uint32Array;
  /** The message every unchanged update of the relation shares (it carries nothing else). */
  unchanged: ChangeMessage;
}

const KIND_NULL = 0x6e; // 'n'
const KIND_TOAST = 0x75; // 'u': unchanged TOAST value, not sent
const KIND_TEXT = 0x74; // 't'
const KIND_BINARY = 0x62; // 'b'
/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH_MICROS = 946_684_800_000_000n;
const IDENTITIES = { d: 'default', n: 'nothing', f: 'full', i: 'index' } as const;
const OTHER: ChangeMessage = { tag: 'other' };

/**
 * Decoded rows inherit nothing (a column named `constructor` or `__proto__` is just a column, and
 * `in` sees only columns), like Object.create(null)'s, but keep V8's fast properties: those are a
 * hash table per object, which cost every row ~3 times the bytes and a slower read per column.
 */
const DecodedRow = function () {} as unknown as new () => Row;
DecodedRow.prototype = Object.create(null);

/** Reads one connection's pgoutput messages: relation messages are remembered for the rows after. */
export class PgoutputReader {
  private readonly plans = new Map<number, Plan>();
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  /** Without a selection every column is decoded. */
  constructor(private readonly select?: ColumnSelection) {}

  /** One XLogData payload (a pgoutput message). */
  read(buf: Buffer): ChangeMessage {
    this.buf = buf;
    this.pos = 1;
    switch (buf[0]) {
      case 0x42 /* B */: {
        const commitLsn = this.lsn();
        const commitTime = this.time();
        return { tag: 'begin', commitLsn, commitTime, xid: this.int32() };
      }
      case 0x43 /* C */: {
        this.pos += 1; // flags, unused
        const commitLsn = this.lsn();
        const endLsn = this.lsn();
        return { tag: 'commit', commitLsn, endLsn, commitTime: this.time() };
      }
      case 0x52 /* R */:
        return { tag: 'relation', relation: this.relation() };
      case 0x49 /* I */: {
        const plan = this.plan();
        if (!plan.decoded) return OTHER;
        this.pos += 1; // 'N'
        return { tag: 'insert', relation: plan.relation, new: this.tuple(plan, false, null) };
      }
      case 0x55 /* U */:
        return this.update(this.plan());
      case 0x44 /* D */: {
        const plan = this.plan();
        if (!plan.decoded) return OTHER;
        const kind = buf[this.pos++];
        const row = this.tuple(plan, kind === 0x4b /* K */, null);
        return kind === 0x4b
          ? { tag: 'delete', relation: plan.relation, old: null, key: row }
          : { tag: 'delete', relation: plan.relation, old: row, key: null };
      }
      case 0x54 /* T */: {
        const n = this.int32();
        this.pos += 1; // flags: cascade, restart identity
        const relations: Relation[] = [];
        for (let i = 0; i < n; i++) {
          const plan = this.plans.get(this.int32());
          if (plan) relations.push(plan.relation);
        }
        return { tag: 'truncate', relations };
      }
      case 0x4d /* M */: {
        const flags = buf[this.pos++] as number;
        this.pos += 8; // the message's LSN
        const prefix = this.cstring();
        const length = this.int32();
        const content = buf.toString('utf8', this.pos, this.pos + length);
        return { tag: 'message', transactional: (flags & 1) === 1, prefix, content };
      }
      case 0x4f /* O: origin */:
      case 0x59 /* Y: type */:
        return OTHER;
      default:
        throw new Error(`unknown pgoutput message ${String.fromCharCode(buf[0] ?? 0)}`);
    }
  }

  private update(plan: Plan): ChangeMessage {
    if (!plan.decoded) return OTHER;
    const buf = this.buf;
    const kind = buf[this.pos++];
    if (kind === 0x4e /* N */) {
      return {
        tag: 'update',
        relation: plan.relation,
        old: null,
        key: null,
        new: this.tuple(plan, false, null),
      };
    }
    if (kind === 0x4b /* K */) {
      const key = this.tuple(plan, true, null);
      this.pos += 1; // 'N'
      return { tag: 'update', relation: plan.relation, old: null, key, new: this.tuple(plan, false, null) };
    }
    // 'O': the whole old row. Compare the decoded columns' bytes before decoding anything.
    const oldAt = this.pos;
    this.note(plan);
    this.pos += 1; // 'N'
    const newAt = this.pos;
    if (this.same(plan)) return plan.unchanged;
    this.pos = oldAt;
    const old = this.tuple(plan, false, null);
    this.pos = newAt;
    return { tag: 'update', relation: plan.relation, old, key: null, new: this.tuple(plan, false, old) };
  }

  /** Reads a relation message and plans its columns. */
  private relation(): Relation {
    const oid = this.int32();
    const schema = this.cstring();
    const name = this.cstring();
    const replicaIdentity = IDENTITIES[String.fromCharCode(this.buf[this.pos++] ?? 0) as 'd'];
    if (replicaIdentity === undefined) throw new Error('unknown replica identity in a relation message');
    const n = this.int16();
    const columns: string[] = [];
    const key: boolean[] = [];
    const types: number[] = [];
    for (let i = 0; i < n; i++) {
      const flags = this.buf[this.pos++] as number;
      columns.push(this.cstring());
      types.push(this.int32());
      this.pos += 4; // type modifier
      key.push((flags & 1) === 1);
    }
    const relation: Relation = {
      oid,
      schema,
      name,
      columns,
      keyColumns: columns.filter((_, i) => key[i]),
      replicaIdentity,
    };
    const selected = this.select ? this.select(relation) : columns;
    const wanted = new Set(selected ?? []);
    this.plans.set(oid, {
      relation,
      names: columns.map((c) => (wanted.has(c) ? c : undefined)),
      parsers: types.map((t) => pg.types.getTypeParser(t) as Parse),
      key,
      decoded: wanted.size > 0,
      kinds: new Uint8Array(n),
      starts: new Uint32Array(n),
      ends: new Uint32Array(n),
      unchanged: { tag: 'unchanged', relation },
    });
    return relation;
  }

  private plan(): Plan {
    const oid = this.int32();
    const plan = this.plans.get(oid);
    if (!plan) throw new Error(`pgoutput row message for relation ${oid} before its relation message`);
    return plan;
  }

  /**
   * Reads a tuple into a row of the decoded columns. `keyOnly`: a 'K' tuple, whose other columns are
   * placeholders. `fallback`: the old row, for unchanged TOAST values of the new one.
   */
  private tuple(plan: Plan, keyOnly: boolean, fallback: Row | null): Row {
    const buf = this.buf;
    const n = this.int16();
    const row = new DecodedRow();
    for (let i = 0; i < n; i++) {
      const kind = buf[this.pos++];
      let start = 0;
      let end = 0;
      if (kind === KIND_TEXT || kind === KIND_BINARY) {
        const length = this.int32();
        start = this.pos;
        end = this.pos += length;
      }
      const name = plan.names[i];
      if (name === undefined || (keyOnly && !plan.key[i])) continue;
      if (kind === KIND_TEXT) row[name] = (plan.parsers[i] as Parse)(buf.toString('utf8', start, end));
      else if (kind === KIND_NULL) row[name] = keyOnly ? undefined : null;
      else if (kind === KIND_TOAST) row[name] = fallback?.[name];
      else if (kind === KIND_BINARY) row[name] = buf.subarray(start, end);
      else throw new Error(`unknown tuple value kind ${String.fromCharCode(kind ?? 0)}`);
    }
    return row;
  }

  /** Walks the old tuple, noting where each decoded column's value lies. */
  private note(plan: Plan): void {
    const buf = this.buf;
    const n = this.int16();
    for (let i = 0; i < n; i++) {
      const kind = buf[this.pos++] as number;
      plan.kinds[i] = kind;
      if (kind === KIND_TEXT || kind === KIND_BINARY) {
        const length = this.int32();
        plan.starts[i] = this.pos;
        plan.ends[i] = this.pos += length;
      }
    }
  }

  /** Walks the new tuple: whether every decoded column holds the old value's bytes. */
  private same(plan: Plan): boolean {
    const buf = this.buf;
    const n = this.int16();
    for (let i = 0; i < n; i++) {
      const kind = buf[this.pos++] as number;
      let start = 0;
      let end = 0;
      if (kind === KIND_TEXT || kind === KIND_BINARY) {
        const length = this.int32();
        start = this.pos;
        end = this.pos += length;
      }
      if (plan.names[i] === undefined) continue;
      const was = plan.kinds[i] as number;
      // An unchanged TOAST value is the old one; an old one the server left out is not known.
      if (was === KIND_TOAST) return false;
      if (kind === KIND_TOAST) continue;
      if (kind !== was) return false;
      if (kind === KIND_NULL) continue;
      const from = plan.starts[i] as number;
      if (end - start !== (plan.ends[i] as number) - from) return false;
      for (let j = 0; j < end - start; j++) if (buf[start + j] !== buf[from + j]) return false;
    }
    return true;
  }

  private int16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  private int32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  private lsn(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Microseconds since 2000-01-01 -> Date (milliseconds, truncated). */
  private time(): Date {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return new Date(Number((v + PG_EPOCH_MICROS) / 1000n));
  }

  private cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('unexpected end of a pgoutput message');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
}
