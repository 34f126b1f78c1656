/**
 * Validation of a batchAdd body, strict on purpose: a request the real platform might tolerate but
 * that breaks the wire contract (null or "" identities, unknown fields) is rejected whole, so a
 * client bug fails a test instead of passing silently. Pure; no I/O.
 */
import { ACCURATE_MATCH_TYPES, IDENTITY_FIELDS } from '../config/types.js';
import type { ApiRow, PublicParams } from '../tuzhan/types.js';

export const MAX_ROWS = 500;
const OPT_TYPES = ['add', 'update', 'delete'];
const ROW_FIELDS = new Set<string>(['identityType', ...IDENTITY_FIELDS, 'groups']);
const PARAM_FIELDS = new Set([
  'isMatching',
  'matchingType',
  'identifyWay',
  'accurateMatchType',
  'accurateMatchValue',
  'optType',
]);

export type Validated = { ok: true; params: PublicParams; rows: ApiRow[] } | { ok: false; msg: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function fail(msg: string): Validated {
  return { ok: false, msg };
}

/** Checks a parsed body; the message names the first offending field. */
export function validateBatchAdd(body: unknown): Validated {
  if (!isObject(body)) return fail('body must be a JSON object');
  const p = body.publicParams;
  if (!isObject(p)) return fail('publicParams is required');
  for (const k of Object.keys(p))
    if (!PARAM_FIELDS.has(k)) return fail(`publicParams.${k} is not a known field`);
  if (typeof p.isMatching !== 'boolean')
    return fail('publicParams.isMatching is required and must be a boolean');
  if (typeof p.optType !== 'string' || !OPT_TYPES.includes(p.optType)) {
    return fail('publicParams.optType must be one of add, update, delete');
  }
  if (p.matchingType !== undefined && p.matchingType !== 1 && p.matchingType !== 2) {
    return fail('publicParams.matchingType must be 1 (exact) or 2 (fuzzy)');
  }
  if (p.isMatching && p.matchingType === undefined) {
    return fail('publicParams.matchingType is required when isMatching is true');
  }
  if (p.isMatching && p.matchingType === 2 && p.identifyWay !== 1 && p.identifyWay !== 2) {
    return fail('publicParams.identifyWay must be 1 or 2 for fuzzy matching');
  }
  if (p.identifyWay !== undefined && p.identifyWay !== 1 && p.identifyWay !== 2) {
    return fail('publicParams.identifyWay must be 1 or 2');
  }
  if (p.isMatching && p.matchingType === 1) {
    if (
      typeof p.accurateMatchType !== 'string' ||
      !(ACCURATE_MATCH_TYPES as readonly string[]).includes(p.accurateMatchType)
    ) {
      return fail(
        `publicParams.accurateMatchType must be one of ${ACCURATE_MATCH_TYPES.join(', ')} for exact matching`,
      );
    }
  }
  if (
    p.accurateMatchValue !== undefined &&
    (typeof p.accurateMatchValue !== 'string' || p.accurateMatchValue === '')
  ) {
    return fail('publicParams.accurateMatchValue must be a non-empty string');
  }
  const data = body.data;
  if (!Array.isArray(data)) return fail('data is required and must be an array');
  if (data.length === 0) return fail('data must hold at least 1 row');
  if (data.length > MAX_ROWS) return fail(`data holds ${data.length} rows; at most ${MAX_ROWS} per request`);
  for (let i = 0; i < data.length; i++) {
    const row: unknown = data[i];
    if (!isObject(row)) return fail(`data[${i}] must be an object`);
    for (const [k, v] of Object.entries(row)) {
      if (!ROW_FIELDS.has(k)) return fail(`data[${i}].${k} is not a known field`);
      if (typeof v !== 'string' || v === '') return fail(`data[${i}].${k} must be a non-empty string`);
    }
    if (
      row.identityType !== undefined &&
      !(IDENTITY_FIELDS as readonly string[]).includes(row.identityType as string)
    ) {
      return fail(`data[${i}].identityType must be one of ${IDENTITY_FIELDS.join(', ')}`);
    }
  }
  return { ok: true, params: p as unknown as PublicParams, rows: data as ApiRow[] };
}
