/**
 * Whose a publication is, and who else reads it: what `teardown` must know before it drops one.
 *
 * PostgreSQL records no creator, so the bridge marks a publication it creates with a comment
 * (`COMMENT ON PUBLICATION`, which only the owner may change; a DBA sees it in `\dRp+`). A
 * publication without the mark was made by someone else (a DBA, for a role that owns no table), or
 * by a bridge from before the mark existed: nothing tells those apart, so both are left alone
 * unless `--force`. Nor does PostgreSQL record which publication a slot reads: a walsender names it
 * when it starts streaming (`START_REPLICATION ... publication_names '...'`, visible in
 * pg_stat_activity to its own role and to pg_read_all_stats), so only an active slot whose command
 * can be read is known not to use it; any other logical slot of the database may.
 */
import type pg from 'pg';
import { quoteIdent } from '../util/sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The comment the bridge gives a publication it creates; its start is the mark. */
export const PUBLICATION_MARK = 'created by tuzhan-cdc';
const COMMENT = `${PUBLICATION_MARK} for its sources; tuzhan-cdc teardown drops it`;

/** The statement that marks `publication` as the bridge's (run right after creating it). */
export function markPublicationSql(publication: string): string {
  // A constant literal: nothing from the config is spliced into it.
  return `COMMENT ON PUBLICATION ${quoteIdent(publication)} IS '${COMMENT}'`;
}

/** Another logical slot of this database that reads, or may read, the publication. */
export interface OtherReader {
  slot: string;
  active: boolean;
  pid: number | null;
  /** true: its walsender named the publication; false: it could not be seen which it reads. */
  known: boolean;
}

export interface PublicationUse {
  exists: boolean;
  /** The bridge created it (it carries the mark). */
  createdByBridge: boolean;
  /** Other slots that read it, or may. */
  readers: OtherReader[];
}

/**
 * The publication names of a START_REPLICATION command: `publication_names 'a,b'`, or with quoted
 * identifiers as PostgreSQL's own subscriber sends them (`'"a","b"'`). Undefined when the command
 * is none (or hidden: `<insufficient privilege>`).
 */
export function publicationNames(command: string | null): string[] | undefined {
  const m = command === null ? null : /publication_names\s+'((?:[^']|'')*)'/i.exec(command);
  if (!m) return undefined;
  return (m[1] ?? '')
    .replace(/''/g, "'")
    .split(',')
    .map((n) =>
      n
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .replace(/""/g, '"'),
    );
}

/** Whether the publication exists, whether the bridge made it, and which other slots read it. */
export async function readPublicationUse(
  db: Queryable,
  publication: string,
  ownSlot: string,
): Promise<PublicationUse> {
  const pub = await db.query<{ comment: string | null }>(
    `SELECT obj_description(oid, 'pg_publication') AS comment FROM pg_publication WHERE pubname = $1`,
    [publication],
  );
  const row = pub.rows[0];
  if (!row) return { exists: false, createdByBridge: false, readers: [] };
  const slots = await db.query<{ slot: string; active: boolean; pid: number | null; command: string | null }>(
    `SELECT s.slot_name AS slot, s.active, s.active_pid AS pid, a.query AS command
       FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
      WHERE s.slot_type = 'logical' AND s.database = current_database() AND s.slot_name <> $1
      ORDER BY s.slot_name`,
    [ownSlot],
  );
  const readers: OtherReader[] = [];
  for (const s of slots.rows) {
    const names = s.active ? publicationNames(s.command) : undefined;
    if (names === undefined) readers.push({ slot: s.slot, active: s.active, pid: s.pid, known: false });
    else if (names.includes(publication))
      readers.push({ slot: s.slot, active: true, pid: s.pid, known: true });
  }
  return { exists: true, createdByBridge: row.comment?.startsWith(PUBLICATION_MARK) === true, readers };
}

/** Why the publication must stay (without --force), or undefined when the bridge may drop it. */
export function reasonToKeep(use: PublicationUse): string | undefined {
  const reasons: string[] = [];
  if (!use.createdByBridge)
    reasons.push(
      "the bridge did not create it (it lacks the bridge's comment: a DBA's, or made by a bridge older than that comment)",
    );
  const known = use.readers.filter((r) => r.known);
  const maybe = use.readers.filter((r) => !r.known);
  if (known.length > 0)
    reasons.push(
      `${plural(known.length, 'slot')} ${known.map((r) => `${r.slot} (pid ${r.pid ?? '?'})`).join(', ')} ${known.length === 1 ? 'streams' : 'stream'} from it`,
    );
  if (maybe.length > 0)
    reasons.push(
      `${plural(maybe.length, 'slot')} ${maybe.map((r) => `${r.slot} (${r.active ? 'active' : 'inactive'})`).join(', ')} may read it (PostgreSQL does not record which publication a slot reads)`,
    );
  return reasons.length > 0 ? reasons.join('; ') : undefined;
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}
