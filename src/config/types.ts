/**
 * The validated, frozen configuration (SPEC section 11). `load-config.ts` builds it from YAML and
 * the environment; every other module receives it (or a part of it) and never reads process.env.
 */

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
export interface MatchConfig {
  isMatching: boolean;
  /** 1 exact, 2 fuzzy. */
  matchingType?: 1 | 2;
  /** Fuzzy only: 1 = unionid>openid>phone>thirdId, 2 = thirdId>phone>openid>unionid. */
  identifyWay?: 1 | 2;
  accurateMatchType?: AccurateMatchType;
  accurateMatchValue?: string;
  /** Exact only: which identity each row is matched by. */
  identityType?: IdentityField;
}

/** A value a `where` filter compares a column with; a list means "any of". */
export type FilterValue = string | number | boolean | null;

export interface SourceConfig {
  name: string;
  /** As written in the config, e.g. `crm.customer_profile`. */
  table: string;
  /** Parsed parts of `table` (unquoted; `"Crm"."Member Group"` gives Crm / Member Group). */
  schema: string;
  tableName: string;
  mode: SourceMode;
  /** Columns identifying a source row; undefined means the table's primary key. */
  key?: readonly string[];
  /** API field -> column. `groups` is required; at least one identity field is required. */
  columns: Readonly<Partial<Record<IdentityField, string>> & { groups: string }>;
  /** Only rows whose columns equal these values (or one of a list) are synced. */
  where?: Readonly<Record<string, FilterValue | readonly FilterValue[]>>;
  match: Readonly<MatchConfig>;
  /** `state`: translate deletes from the last payload the bridge sent for the key. */
  deleteLookup: 'none' | 'state';
  onTruncate: 'ignore' | 'delete-all';
}

export interface Config {
  postgres: {
    url: string;
    slot: string;
    publication: string;
    statusSchema: string;
    /** `stop`: a lost slot stops the bridge with the remedy; `resync`: re-sync from a new slot. */
    onSlotLost: 'stop' | 'resync';
    /** Paths of PEM files; `verify` full (default), ca or none. */
    ssl?: { ca?: string; cert?: string; key?: string; verify: 'full' | 'ca' | 'none' };
  };
  tuzhan: {
    baseUrl: string;
    batchAddPath: string;
    token?: string;
    appId?: string;
    appSecret?: string;
    timeoutMs: number;
    concurrency: number;
    /** Requests per second; 0 means no limit. */
    ratePerSecond: number;
    /** How long only failed requests (5xx, timeouts, refused credentials) may go on before not ready. */
    notReadyAfterMs: number;
  };
  batching: {
    maxBatchSize: number;
    debounceMs: number;
    maxWaitMs: number;
    maxBufferedRows: number;
  };
  http: {
    /** null when `listen: off`. */
    listen: { host: string; port: number } | null;
    /** Bearer token for the ops endpoints (required when `listen` is not loopback). */
    token?: string;
  };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  };
  sources: readonly SourceConfig[];
}
