/**
 * Which columns of a source's table the bridge reads: those it maps and filters on, and those an old
 * row must carry for a delete or an identity change to be translated. Pure functions of the config,
 * for the mapper, the router's check of relation messages and the startup checks.
 */
import type { SourceConfig } from '../config/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';

/** Columns a source maps (identities, groups) and filters on. */
export function mappedColumns(source: SourceConfig): string[] {
  const cols = IDENTITY_FIELDS.map((f) => source.columns[f]).filter((c): c is string => c !== undefined);
  cols.push(source.columns.groups);
  cols.push(...Object.keys(source.where ?? {}));
  return [...new Set(cols)];
}

/**
 * The mapped columns an old row (a DELETE's, or an UPDATE's before image) must carry to say what
 * the platform held: the identities, the groups (a source removes only the groups a row held, in
 * both modes) and the filter. Without them, a row-mode source reads what it last recorded as sent
 * (as `deleteLookup: state` does); the startup check requires them of a membership source.
 */
export function oldImageColumns(source: SourceConfig): string[] {
  const cols = IDENTITY_FIELDS.map((f) => source.columns[f]).filter((c): c is string => c !== undefined);
  cols.push(source.columns.groups);
  cols.push(...Object.keys(source.where ?? {}));
  return [...new Set(cols)];
}
