/**
 * The validated, frozen configuration (SPEC section 11). `load-config.ts` builds it from YAML and
 * the environment; every other module receives it (or a part of it) and never reads process.env.
 * The types are derived from the zod schema (`schema.ts`, where each key is described), so they are
 * written once; a source adds the parts of its parsed table name.
 */
import type * as z from 'zod';
import type { configSchema, matchSchema, sourceSchema } from './schema.js';

export type SourceMode = 'row' | 'membership';

/** API row fields a source column can map to (SPEC section 2). */
export const IDENTITY_FIELDS = ['thirdId', 'openid', 'unionid', 'phone'] as const;
export type IdentityField = (typeof IDENTITY_FIELDS)[number];

export const ACCURATE_MATCH_TYPES = [
  'gzh',
  'workwechat',
  'YOUZAN',
  'EZR',
  'contentminiapp',
  'contenthome',
] as const;
export type AccurateMatchType = (typeof ACCURATE_MATCH_TYPES)[number];

/** publicParams besides optType, plus the per-row identityType used for exact matching. */
export type MatchConfig = z.output<typeof matchSchema>;

/** A value a `where` filter compares a column with; a list means "any of". */
export type FilterValue = string | number | boolean | null;

export type SourceConfig = Readonly<
  z.output<typeof sourceSchema> & {
    /** Parsed parts of `table` (unquoted; `"Crm"."Member Group"` gives Crm / Member Group). */
    schema: string;
    tableName: string;
  }
>;

export type Config = Readonly<
  Omit<z.output<typeof configSchema>, 'sources'> & { sources: readonly SourceConfig[] }
>;
