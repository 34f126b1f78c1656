/**
 * pgoutput messages (as parsed by pg-logical-replication) -> the bridge's change messages.
 * Pure functions: LSNs become bigints (the library's strings are zero-padded and must never be
 * compared as strings), commit times become Dates, unchanged TOAST values stay `undefined`.
 */
import { parseLsn } from '../util/lsn.js';

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
  | { tag: 'delete'; relation: Relation; old: Row | null; key: Row | null }
  | { tag: 'truncate'; relations: Relation[] }
  /** A logical decoding message (`pg_logical_emit_message`): the bridge's own watermarks. */
  | { tag: 'message'; transactional: boolean; prefix: string; content: string }
  | { tag: 'other' };

interface LibRelation {
  relationOid: number;
  schema: string;
  name: string;
  columns: Array<{ name: string }>;
  keyColumns: string[];
  replicaIdentity: Relation['replicaIdentity'];
}

type LibMessage = { tag: string } & Record<string, unknown>;

const relationCache = new WeakMap<object, Relation>();

function toRelation(lib: LibRelation): Relation {
  let rel = relationCache.get(lib);
  if (!rel) {
    rel = {
      oid: lib.relationOid,
      schema: lib.schema,
      name: lib.name,
      columns: lib.columns.map((c) => c.name),
      keyColumns: lib.keyColumns,
      replicaIdentity: lib.replicaIdentity,
    };
    relationCache.set(lib, rel);
  }
  return rel;
}

function lsn(v: unknown): bigint {
  return typeof v === 'string' ? parseLsn(v) : 0n;
}

function time(v: unknown): Date {
  // Microseconds since the Unix epoch (the library already shifted PostgreSQL's 2000 epoch).
  return typeof v === 'bigint' ? new Date(Number(v / 1000n)) : new Date(0);
}

/** Converts one message of the library's pgoutput parser. */
export function decodeMessage(msg: LibMessage): ChangeMessage {
  switch (msg.tag) {
    case 'begin':
      return {
        tag: 'begin',
        xid: msg.xid as number,
        commitLsn: lsn(msg.commitLsn),
        commitTime: time(msg.commitTime),
      };
    case 'commit':
      return {
        tag: 'commit',
        commitLsn: lsn(msg.commitLsn),
        endLsn: lsn(msg.commitEndLsn),
        commitTime: time(msg.commitTime),
      };
    case 'relation':
      return { tag: 'relation', relation: toRelation(msg as unknown as LibRelation) };
    case 'insert':
      return { tag: 'insert', relation: toRelation(msg.relation as LibRelation), new: msg.new as Row };
    case 'update':
      return {
        tag: 'update',
        relation: toRelation(msg.relation as LibRelation),
        old: (msg.old as Row | null) ?? null,
        key: (msg.key as Row | null) ?? null,
        new: msg.new as Row,
      };
    case 'delete':
      return {
        tag: 'delete',
        relation: toRelation(msg.relation as LibRelation),
        old: (msg.old as Row | null) ?? null,
        key: (msg.key as Row | null) ?? null,
      };
    case 'truncate':
      return {
        tag: 'truncate',
        relations: (msg.relations as LibRelation[]).filter(Boolean).map(toRelation),
      };
    case 'message':
      return {
        tag: 'message',
        transactional: msg.transactional === true,
        prefix: String(msg.prefix),
        content: Buffer.isBuffer(msg.content) ? msg.content.toString('utf8') : String(msg.content ?? ''),
      };
    default:
      return { tag: 'other' };
  }
}
