/**
 * API rows as the platform expects them (docs/design.md, "The platform"), built from what the pipeline knows of a
 * customer (its identity and groups), and read back from a stored payload. Pure functions.
 */
import { IDENTITY_FIELDS, type MatchConfig } from '../config/types.js';
import type { OptType } from '../domain/types.js';
import type { Identity, Image } from '../domain/change.js';
import type { ApiRow, PublicParams } from './types.js';

/** The API row for a customer's identity and groups (absent fields omitted; no groups: none sent). */
export function apiRow(match: Readonly<MatchConfig>, identity: Identity, groups: readonly string[]): ApiRow {
  const row: ApiRow = {};
  if (match.identityType) row.identityType = match.identityType;
  for (const f of IDENTITY_FIELDS) {
    const v = identity[f];
    if (v !== undefined) row[f] = v;
  }
  if (groups.length) row.groups = groups.join(',');
  return row;
}

/** publicParams of a source's requests: its `match` without the per-row identityType. */
export function publicParams(match: Readonly<MatchConfig>, op: OptType): PublicParams {
  const { identityType: _identityType, ...params } = match;
  return { ...params, optType: op };
}

/** The identity and groups a stored payload (an API row sent before) names. */
export function imageFromPayload(payload: Record<string, unknown>): Image {
  const identity: Identity = {};
  for (const f of IDENTITY_FIELDS) {
    const v = payload[f];
    if (typeof v === 'string' && v !== '') identity[f] = v;
  }
  return { identity, groups: groupNames(payload.groups) };
}

/** A payload's group names: apiRow joined them with commas, from names that hold none. */
function groupNames(groups: unknown): string[] {
  if (typeof groups !== 'string') return [];
  return [...new Set(groups.split(',').map((g) => g.trim()))].filter((g) => g !== '');
}
