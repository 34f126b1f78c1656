/**
 * Pure logic of the platform's wire format: building the request body, classifying an answer, and
 * turning `errorData` back into per-row outcomes. No I/O, so every rule here is unit-tested.
 */
import type { Logger } from 'pino';
import { IDENTITY_FIELDS, type IdentityField } from '../config/types.js';
import type { ApiRow, BatchAddBody, BatchAddResponse, PublicParams, RowOutcome } from './types.js';

/** The vendor's hard limit of rows per request (docs/design.md, "The platform"). */
export const MAX_ROWS_PER_REQUEST = 500;

/** Outcomes shared by every row they describe (runs for every row; outcomes are never changed). */
export const SYNCED: RowOutcome = Object.freeze({ status: 'synced' });
const ACCEPTED: RowOutcome = Object.freeze({ status: 'accepted' });

function nonEmpty(v: unknown): v is string | number {
  return (typeof v === 'string' && v.trim() !== '') || (typeof v === 'number' && Number.isFinite(v));
}

/** An empty name (leading, trailing or doubled comma) or a name with spaces around it. */
const NOT_NORMAL = /(?:^|,)(?:\s|,|$)|\s(?:,|$)/;

/** Normalizes "a, ,b," to "a,b"; undefined when no group name is left. */
export function normalizeGroups(groups: unknown): string | undefined {
  if (typeof groups !== 'string') return undefined;
  // Runs for every row sent; what the bridge builds is already normal: keep it as it is.
  if (groups !== '' && !NOT_NORMAL.test(groups)) return groups;
  const names = groups
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
  return names.length === 0 ? undefined : names.join(',');
}

/**
 * The row as it goes on the wire: absent, null and "" identities are omitted (the platform
 * treats "" as a value), as is an empty `groups`. A `delete` without groups means "remove all".
 */
export function cleanRow(row: ApiRow): ApiRow {
  if (isClean(row)) return row;
  const out: ApiRow = {};
  const raw = row as Record<string, unknown>;
  if (nonEmpty(raw.identityType)) out.identityType = String(raw.identityType).trim() as IdentityField;
  for (const f of IDENTITY_FIELDS) {
    const v = raw[f];
    if (nonEmpty(v)) out[f] = String(v);
  }
  const groups = normalizeGroups(raw.groups);
  if (groups !== undefined) out.groups = groups;
  return out;
}

/** Each field cleanRow keeps, by its place in a clean row (the order JSON.stringify writes them in). */
const FIELD_PLACE = new Map<string, number>(
  ['identityType', ...IDENTITY_FIELDS, 'groups'].map((f, i) => [f, i]),
);

/**
 * Whether a row is already what cleanRow would make of it, fields in the same order (every row the
 * bridge builds: apiRow): it is then sent as it is, without a copy (this runs for every row sent).
 */
function isClean(row: ApiRow): boolean {
  let last = -1;
  const raw = row as Record<string, unknown>;
  for (const k in raw) {
    const place = FIELD_PLACE.get(k);
    const v = raw[k];
    if (place === undefined || place <= last || typeof v !== 'string') return false;
    last = place;
    if (k === 'groups') {
      if (normalizeGroups(v) !== v) return false;
    } else if (k === 'identityType') {
      if (v === '' || v.trim() !== v) return false;
    } else if (v.trim() === '') return false;
  }
  return true;
}

/** Whether a (cleaned) row carries at least one identity value. */
export function hasIdentity(row: ApiRow): boolean {
  return IDENTITY_FIELDS.some((f) => row[f] !== undefined);
}

/** publicParams without undefined/null/"" members. */
export function cleanParams(params: PublicParams): PublicParams {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    out[k] = v;
  }
  return out as unknown as PublicParams;
}

export function buildBody(params: PublicParams, rows: readonly ApiRow[]): BatchAddBody {
  return { publicParams: cleanParams(params), data: rows.map(cleanRow) };
}

/**
 * `Retry-After` in ms: delay-seconds (RFC 9110 section 10.2.3) or an HTTP-date; undefined when
 * absent or unparseable. A date in the past gives 0.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const s = v.trim();
  if (s === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const at = Date.parse(s);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

const TRANSIENT_HTTP = new Set([408, 425, 429]);
/** Codes that mean "the token is invalid or expired": a fresh token may help. */
const TOKEN_EXPIRED_CODES = new Set(['100200']);
/** Codes no token refresh can fix: the credentials themselves are wrong. */
const AUTH_FATAL_CODES = new Set(['100100', '100300']);

/** What one HTTP answer means, before any token refresh or retry. */
export type Classification =
  | { kind: 'result'; apiStatus: number | null; data: NonNullable<BatchAddResponse['data']> | null }
  | { kind: 'unavailable'; reason: string; retryAfterMs?: number }
  | { kind: 'token-expired'; reason: string }
  | { kind: 'auth'; reason: string }
  | { kind: 'rejected'; reason: string };

/**
 * Classifies an answer (docs/design.md, "Errors"). Order matters: transient HTTP statuses win over any
 * body (a gateway's 502 page is not the platform speaking); auth wins over validation.
 */
export function classifyResponse(
  httpStatus: number,
  body: BatchAddResponse | undefined,
  retryAfterMs?: number,
): Classification {
  const code = body?.code === undefined || body.code === null ? undefined : String(body.code);
  const msg = body?.msg ?? '';
  const what = `HTTP ${httpStatus}${code === undefined ? '' : ` code ${code}`}${msg ? `: ${msg}` : ''}`;
  if (TRANSIENT_HTTP.has(httpStatus) || httpStatus >= 500) {
    return { kind: 'unavailable', reason: what, retryAfterMs };
  }
  if (code !== undefined && TOKEN_EXPIRED_CODES.has(code)) return { kind: 'token-expired', reason: what };
  if (httpStatus === 401) return { kind: 'token-expired', reason: what };
  if (code !== undefined && AUTH_FATAL_CODES.has(code)) return { kind: 'auth', reason: what };
  if (httpStatus === 403) return { kind: 'auth', reason: what };
  // A 404 is a wrong baseUrl/batchAddPath, not a bad row: bisecting would fail every row, so it
  // is retried (nothing is lost) while the operator fixes the config.
  if (httpStatus === 404) {
    return { kind: 'unavailable', reason: `${what} (check tuzhan.baseUrl and tuzhan.batchAddPath)` };
  }
  if (httpStatus >= 400 || httpStatus < 200 || httpStatus >= 300) return { kind: 'rejected', reason: what };
  if (body === undefined) {
    // 2xx without a JSON body: a proxy page or a truncated answer. Retrying loses nothing.
    return { kind: 'unavailable', reason: `${what}: answer is not the platform's JSON` };
  }
  if (code !== '200') return { kind: 'rejected', reason: what };
  const data = body.data ?? null;
  const status = data === null ? null : Number(data.status);
  if (data === null || status === null || !Number.isFinite(status)) {
    return { kind: 'unavailable', reason: `${what}: answer has no data.status` };
  }
  return { kind: 'result', apiStatus: status, data };
}

const ROW_MESSAGE_FIELDS = ['errorMsg', 'errorMessage', 'message', 'msg', 'reason', 'error'];

function rowMessage(entry: Record<string, unknown>): string | undefined {
  for (const f of ROW_MESSAGE_FIELDS) {
    const v = entry[f];
    if (typeof v === 'string' && v.trim() !== '') return v;
  }
  return undefined;
}

function norm(v: unknown): string | undefined {
  return nonEmpty(v) ? String(v).trim() : undefined;
}

function groupSet(v: unknown): string {
  const g = normalizeGroups(typeof v === 'string' ? v : undefined);
  return g === undefined ? '' : g.split(',').sort().join(',');
}

/**
 * How well an errorData entry fits a sent row: -1 when an identity present in both differs or
 * none is shared; otherwise the number of shared identities, +0.5 when the groups agree too.
 */
function matchScore(entry: Record<string, unknown>, row: ApiRow): number {
  let shared = 0;
  for (const f of IDENTITY_FIELDS) {
    const a = norm(entry[f]);
    const b = norm(row[f]);
    if (a === undefined || b === undefined) continue;
    if (a !== b) return -1;
    shared += 1;
  }
  if (shared === 0) return -1;
  return groupSet(entry.groups) === groupSet(row.groups) ? shared + 0.5 : shared;
}

/**
 * Per-row outcomes for an answer with `errorData` (status 2 or -1): every entry claims the best
 * matching unclaimed sent row (by identity values, groups as tie-breaker, first in order after
 * that), so reordered, trimmed or decorated echoes still map. Rows nothing claims are synced;
 * entries that claim nothing are logged, never fatal.
 */
export function mapErrorData(
  rows: readonly ApiRow[],
  errorData: readonly unknown[],
  fallbackMessage: string,
  logger?: Logger,
): RowOutcome[] {
  const outcomes: RowOutcome[] = rows.map(() => SYNCED);
  const claimed = new Set<number>();
  let unmatched = 0;
  for (const raw of errorData) {
    if (raw === null || typeof raw !== 'object') {
      unmatched += 1;
      continue;
    }
    const entry = raw as Record<string, unknown>;
    let best = -1;
    let bestScore = -1;
    rows.forEach((row, i) => {
      if (claimed.has(i)) return;
      const score = matchScore(entry, row);
      if (score > bestScore) {
        best = i;
        bestScore = score;
      }
    });
    if (best < 0) {
      unmatched += 1;
      continue;
    }
    claimed.add(best);
    outcomes[best] = { status: 'failed', error: rowMessage(entry) ?? fallbackMessage };
  }
  if (unmatched > 0) {
    logger?.warn(
      { unmatched, errorData: errorData.length, rows: rows.length },
      'errorData entries match no sent row; those rows are counted as synced',
    );
  }
  return outcomes;
}

/** Outcomes of a classified `result` (docs/design.md, "Errors"). */
export function outcomesOf(
  rows: readonly ApiRow[],
  apiStatus: number,
  data: NonNullable<BatchAddResponse['data']>,
  msg: string,
  logger?: Logger,
): RowOutcome[] {
  const message = (data.message && data.message.trim()) || msg || `platform status ${apiStatus}`;
  const errorData = Array.isArray(data.errorData) ? data.errorData : null;
  if (apiStatus === 1) return rows.map(() => SYNCED);
  if (apiStatus === 0) return rows.map(() => ACCEPTED);
  if ((apiStatus === 2 || apiStatus === -1) && errorData !== null && errorData.length > 0) {
    return mapErrorData(rows, errorData, message, logger);
  }
  if (apiStatus === -1) return rows.map(() => ({ status: 'failed', error: message }));
  // Status 2 without errorData, or a status the vendor does not document: which rows failed is
  // unknowable. Marking them failed keeps them visible (and retryable) instead of silently lost.
  const error = `platform status ${apiStatus} without errorData: ${message}`;
  return rows.map(() => ({ status: 'failed', error }));
}

/** Replaces every secret (raw and URL-encoded) in a text by "***". */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s === undefined || s.length < 3) continue;
    for (const form of new Set([s, encodeURIComponent(s)])) out = out.split(form).join('***');
  }
  return out;
}
