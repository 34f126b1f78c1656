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
 * The mapped columns an old row (a DELETE's, or an UPDATE's before image) must carry. Row mode
 * clears a gone identity whole, so the identities (and the filter) are enough, not the groups;
 * membership mode removes one pair, so its group too.
 */
export function oldImageColumns(source: SourceConfig): string[] {
  const cols = IDENTITY_FIELDS.map((f) => source.columns[f]).filter((c): c is string => c !== undefined);
  if (source.mode === 'membership') cols.push(source.columns.groups);
  cols.push(...Object.keys(source.where ?? {}));
  return [...new Set(cols)];
}
