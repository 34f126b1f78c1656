/**
 * Held rows (the destructive-change guard, sql/010_held_rows.sql): the statements that hold a key,
 * list what is held, and settle it (an operator's rejection), and the count a source's limit is a
 * share of. A held row keeps `op` and `payload` as they were, since the platform still holds that;
 * `error` says why it is held and `synced_at` since when. Statements are pure functions of the
 * schema name, as in sql.ts; this file keeps the guard's apart from the write path's.
 */
import type pg from 'pg';
import { formatLsn } from '../util/lsn.js';
import { quoteIdent } from '../util/sql.js';
import { opCode, outcomeRows, statusCode, statusOf } from './codes.js';
import type { RetryingQuery } from './sent-mark.js';
import { failedRowOf, type FailedRow, type FailedRowRecord } from './status-store.js';

/** The reason recorded for a key whose later change is held with an earlier one. */
export const HELD_WITH_EARLIER = 'held with an earlier change of this key (see tuzhan-cdc held)';
/** The reason an operator's rejection records (status `skipped`). */
export const REJECTED = 'rejected by an operator: the platform keeps these groups';

export type HeldSql = ReturnType<typeof heldSql>;

export function heldSql(schemaName: string) {
  const schema = quoteIdent(schemaName);
  const row = `${schema}.sync_row`;
  /** sync_row with op and status as text (codes.ts), for the statements that read them. */
  const rows = outcomeRows(schema);
  const held = statusCode('held');
  const sourceId = (param: string): string => `(SELECT id FROM ${schema}.sync_source WHERE name = ${param})`;
  return {
    /**
     * $1 source, $2 keys, $3 their LSNs, $4 their commit times, $5 the reason (null: keep a held
     * row's own, or say it is held with an earlier change). op and payload stay; a key held already
     * keeps its reason and its `synced_at` (since when it is held). Never replaces a later outcome.
     */
    hold: `INSERT INTO ${row} AS t (source_id, key, op_code, status_code, attempts, error, lsn, committed_at, synced_at, payload)
      SELECT ${sourceId('$1')}, r.k, ${opCode('delete')}, ${held}, 0, coalesce($5, '${HELD_WITH_EARLIER}'), r.l, r.c, now(), NULL
        FROM unnest($2::text[], $3::pg_lsn[], $4::timestamptz[]) AS r(k, l, c)
      ON CONFLICT (source_id, key) DO UPDATE SET
        status_code = ${held}, attempts = 0, lsn = EXCLUDED.lsn, committed_at = EXCLUDED.committed_at,
        error = CASE WHEN t.status_code = ${held} THEN t.error ELSE coalesce($5, '${HELD_WITH_EARLIER}') END,
        synced_at = CASE WHEN t.status_code = ${held} THEN t.synced_at ELSE now() END
      WHERE t.lsn IS NULL OR t.lsn <= EXCLUDED.lsn`,

    /** $1 source: the keys held now. */
    heldKeys: `SELECT key AS k FROM ${rows} AS o WHERE source_id = ${sourceId('$1')} AND status = 'held'`,

    /** $1 source, $2 keys: which of them are held now. */
    stillHeld: `SELECT key AS k FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND key = ANY($2::text[]) AND status = 'held'`,

    /** $1 source, $2 last key (or null), $3 page size: held rows in key order, with what the platform holds. */
    heldRows: `SELECT key AS k, attempts, lsn::text AS lsn, committed_at, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND status = 'held' AND ($2::text IS NULL OR key > $2::text)
      ORDER BY key LIMIT $3`,

    /** $1 source, $2 keys: those of them held now, with what the platform holds (in key order, whatever the plan). */
    heldRowsByKey: `SELECT key AS k, attempts, lsn::text AS lsn, committed_at, payload FROM ${rows} AS o
      WHERE source_id = ${sourceId('$1')} AND key = ANY($2::text[]) AND status = 'held' ORDER BY key`,

    /** $1 schema name: whether sync_held is there (migration 010). */
    exists: `SELECT to_regclass(format('%I.sync_held', $1::text)) IS NOT NULL AS ok`,

    /** $1 source (or null): what is held, per source and reason, oldest first. */
    summary: `SELECT source, reason, rows::int AS rows, held_since FROM ${schema}.sync_held
      WHERE $1::text IS NULL OR source = $1`,

    /** $1 source, $2 the reason, $3 keys (null: every held key): held rows become skipped. */
    settle: `UPDATE ${row} SET status_code = ${statusCode('skipped')}, error = $2, synced_at = now()
      WHERE source_id = ${sourceId('$1')} AND ${statusOf(schema)} = 'held' AND ($3::text[] IS NULL OR key = ANY($3::text[]))`,

    /** $1 source: its rows in sync_status (what a share of `maxRemovals` is taken of). */
    sourceRows: `SELECT count(*)::int AS n FROM ${row} WHERE source_id = ${sourceId('$1')}`,

    /** $1 source: numbers a source in sync_source once (as sql.ts's ensureSource). */
    ensureSource: `INSERT INTO ${schema}.sync_source (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`,
  };
}

/** What is held for one reason. */
export interface HeldGroup {
  source: string;
  reason: string;
  rows: number;
  since: Date;
}

export class HeldStore {
  readonly sql: HeldSql;

  constructor(
    private readonly db: Pick<pg.ClientBase, 'query'>,
    statusSchema: string,
    /** Retries connection failures (the status store's): a held outcome must be stored, not dropped. */
    private readonly withRetry: RetryingQuery = (_what, fn) => fn(),
  ) {
    this.sql = heldSql(statusSchema);
  }

  /** Records these keys as held (the outcome of their latest change), with the reason. */
  async hold(
    source: string,
    rows: ReadonlyArray<{ rowKey: string; lsn: bigint; committedAt: Date }>,
    reason: string | null,
  ): Promise<void> {
    if (rows.length === 0) return;
    await this.withRetry('storing held rows', async () => {
      await this.db.query(this.sql.ensureSource, [source]);
      await this.db.query(this.sql.hold, [
        source,
        rows.map((r) => r.rowKey),
        rows.map((r) => formatLsn(r.lsn)),
        rows.map((r) => r.committedAt),
        reason,
      ]);
    });
  }

  /** The keys of a source held now. */
  async heldKeys(source: string): Promise<Set<string>> {
    const res = await this.withRetry('reading held rows', () =>
      this.db.query<{ k: string }>(this.sql.heldKeys, [source]),
    );
    return new Set(res.rows.map((r) => r.k));
  }

  /** Which of these keys of a source are held now. */
  async stillHeld(source: string, keys: readonly string[]): Promise<Set<string>> {
    const res = await this.withRetry('reading held rows', () =>
      this.db.query<{ k: string }>(this.sql.stillHeld, [source, keys]),
    );
    return new Set(res.rows.map((r) => r.k));
  }

  /** A source's held rows, page by page in key order, with what the platform still holds. */
  async *heldRows(source: string, pageSize = 500): AsyncGenerator<FailedRow[]> {
    let after: string | null = null;
    for (;;) {
      const res: pg.QueryResult<FailedRowRecord> = await this.withRetry('reading held rows', () =>
        this.db.query<FailedRowRecord>(this.sql.heldRows, [source, after, pageSize]),
      );
      if (res.rows.length === 0) return;
      yield res.rows.map(failedRowOf);
      if (res.rows.length < pageSize) return;
      after = res.rows[res.rows.length - 1]?.k ?? null;
    }
  }

  /** Those of these keys held now, with what the platform holds. */
  async heldRowsByKey(source: string, keys: readonly string[]): Promise<FailedRow[]> {
    if (keys.length === 0) return [];
    const res = await this.withRetry('reading held rows', () =>
      this.db.query<FailedRowRecord>(this.sql.heldRowsByKey, [source, keys]),
    );
    return res.rows.map(failedRowOf);
  }

  /** What is held, per source and reason, oldest first. */
  async summary(source?: string): Promise<HeldGroup[]> {
    const res = await this.db.query<{ source: string; reason: string; rows: number; held_since: Date }>(
      this.sql.summary,
      [source ?? null],
    );
    return res.rows.map((r) => ({ source: r.source, reason: r.reason, rows: r.rows, since: r.held_since }));
  }

  /** Held rows of a source (these keys, or all) become `skipped` with the reason; how many did. */
  async settle(source: string, reason: string, keys: readonly string[] | null = null): Promise<number> {
    const res = await this.withRetry('settling held rows', () =>
      this.db.query(this.sql.settle, [source, reason, keys]),
    );
    return res.rowCount ?? 0;
  }

  /** A source's rows in sync_status. */
  async sourceRows(source: string): Promise<number> {
    const res = await this.withRetry('counting a source', () =>
      this.db.query<{ n: number }>(this.sql.sourceRows, [source]),
    );
    return res.rows[0]?.n ?? 0;
  }
}
