/**
 * `guard` (top level and per source): how many of a source's rows one transaction or flush window
 * may remove groups from before it is held for an operator. `maxRemovals` is a number of rows
 * (`500`), a share of the rows the source has in sync_status (`"5%"`), or `off`; `guard: off` is
 * the same as `maxRemovals: off`. Without it: max(100 rows, 10 %). A source's own `guard` replaces
 * the top level's.
 */
import * as z from 'zod';

export type RemovalLimit =
  { kind: 'default' } | { kind: 'rows'; rows: number } | { kind: 'share'; percent: number } | { kind: 'off' };

const EXPECTED = `expected a number of rows (500), a share of the source's rows ("5%"), or off`;

/** A `maxRemovals` value, or the problem with it. */
export function parseRemovalLimit(v: unknown): RemovalLimit | string {
  if (v === false) return { kind: 'off' };
  if (typeof v === 'number') {
    return Number.isInteger(v) && v >= 0 ? { kind: 'rows', rows: v } : `${EXPECTED}; got ${v}`;
  }
  if (typeof v !== 'string')
    return `${EXPECTED}; got ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v}`;
  const t = v.trim();
  if (t.toLowerCase() === 'off') return { kind: 'off' };
  if (/^\d+$/.test(t)) return { kind: 'rows', rows: Number(t) };
  const share = /^(\d+(?:\.\d+)?)\s*%$/.exec(t);
  if (share) {
    const percent = Number(share[1]);
    if (percent > 0 && percent <= 100) return { kind: 'share', percent };
    return `a share must be more than 0% and at most 100%; got ${JSON.stringify(t)}`;
  }
  return `${EXPECTED}; got ${t.length <= 40 ? JSON.stringify(t) : 'a string'}`;
}

const limitSchema = z.unknown().transform((v, ctx): RemovalLimit => {
  const parsed = parseRemovalLimit(v);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** `guard:` — `off`, or a mapping with `maxRemovals`. */
export const guardSchema = z.preprocess(
  (v) =>
    v === false || (typeof v === 'string' && v.trim().toLowerCase() === 'off') ? { maxRemovals: 'off' } : v,
  z.strictObject({ maxRemovals: limitSchema.default({ kind: 'default' }) }),
);

export type GuardConfig = z.output<typeof guardSchema>;

/** The default: a transaction may remove groups from max(100 rows, 10 % of the source's rows). */
export const DEFAULT_MIN_ROWS = 100;
export const DEFAULT_PERCENT = 10;

/**
 * The most rows of a source one transaction or window may remove groups from, given the rows the
 * source has in sync_status; null when the guard is off.
 */
export function removalLimit(limit: RemovalLimit, sourceRows: number): number | null {
  switch (limit.kind) {
    case 'off':
      return null;
    case 'rows':
      return limit.rows;
    case 'share':
      return Math.floor((sourceRows * limit.percent) / 100);
    case 'default':
      return Math.max(DEFAULT_MIN_ROWS, Math.floor((sourceRows * DEFAULT_PERCENT) / 100));
  }
}

/** The limit in words, for the reason a held row gives: `guard.maxRemovals 10% of 2,000 rows = 200`. */
export function describeLimit(limit: RemovalLimit, sourceRows: number): string {
  const n = removalLimit(limit, sourceRows);
  switch (limit.kind) {
    case 'off':
      return 'off';
    case 'rows':
      return `${limit.rows}`;
    case 'share':
      return `${limit.percent}% of ${sourceRows} rows = ${n}`;
    case 'default':
      return `the default, max(${DEFAULT_MIN_ROWS}, ${DEFAULT_PERCENT}% of ${sourceRows} rows) = ${n}`;
  }
}
