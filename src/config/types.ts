/**
 * The validated, frozen configuration (docs/design.md, "Configuration"). `load-config.ts` builds it from YAML and
 * the environment; every other module receives it (or a part of it) and never reads process.env.
 * The types are derived from the zod schema (`schema.ts`, where each key is described), so they are
 * written once; a source adds the parts of its parsed table name.
 */
import type * as z from 'zod';
import type { GuardConfig } from './guard.js';
import type { configSchema, matchSchema, sourceSchema } from './schema.js';

export type SourceMode = 'row' | 'membership';

export {
  ACCURATE_MATCH_TYPES,
  IDENTITY_FIELDS,
  type AccurateMatchType,
  type IdentityField,
} from './fields.js';

/** publicParams besides optType, plus the per-row identityType used for exact matching. */
export type MatchConfig = z.output<typeof matchSchema>;

/** A value a `where` filter compares a column with; a list means "any of". */
export type FilterValue = string | number | boolean | null;

export type SourceConfig = Readonly<
  Omit<z.output<typeof sourceSchema>, 'guard'> & {
    /** Its limit on mass removals: its own `guard`, else the top level's (../config/guard.ts). */
    guard: GuardConfig;
    /** Parsed parts of `table` (unquoted; `"Crm"."Member Group"` gives Crm / Member Group). */
    schema: string;
    tableName: string;
  }
>;

export type Config = Readonly<
  Omit<z.output<typeof configSchema>, 'sources'> & { sources: readonly SourceConfig[] }
>;
