/**
 * The zod schema of the config file (docs/design.md, "Configuration"): types, ranges, defaults and unknown keys.
 * Rules that relate several keys (credentials, match parameters, identity columns) live in
 * `validate.ts`, so each problem is reported once, with its own message.
 */
import * as z from 'zod';
import { SSL_MODES } from '../util/pg-connection.js';
import { guardSchema } from './guard.js';
import { PLAIN_NAME } from '../util/sql.js';
import { ACCURATE_MATCH_TYPES, IDENTITY_FIELDS } from './fields.js';

/**
 * Numbers and booleans may also be written as strings, so `${VAR}` works for them
 * (`concurrency: ${CONCURRENCY}` substitutes the text "8").
 */
function fromText(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const t = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === 'true') return true;
  if (t === 'false') return false;
  return v;
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.preprocess(fromText, z.int().min(min).max(max));
const bool = () => z.preprocess(fromText, z.boolean());
const nonEmpty = () => z.string().min(1);

function isUrl(s: string, protocols: readonly string[]): boolean {
  try {
    return protocols.includes(new URL(s).protocol);
  } catch {
    return false;
  }
}

function validSslMode(url: string): boolean {
  const mode = new URL(url).searchParams.get('sslmode');
  return mode === null || (SSL_MODES as readonly string[]).includes(mode);
}

const plainName = (what: string) =>
  nonEmpty().regex(PLAIN_NAME, {
    error: `must be a plain ${what} name: lower-case letters, digits and _, starting with a letter or _, at most 63 bytes`,
  });

export const postgresSchema = z.strictObject({
  url: z
    .string()
    .refine((s) => isUrl(s, ['postgres:', 'postgresql:']), {
      error: 'must be a postgres:// or postgresql:// URL',
    })
    .refine((s) => !isUrl(s, ['postgres:', 'postgresql:']) || validSslMode(s), {
      error: `sslmode must be one of ${SSL_MODES.join(', ')}`,
    }),
  slot: plainName('replication slot').default('tuzhan_cdc'),
  publication: plainName('publication').default('tuzhan_cdc'),
  statusSchema: z
    .string()
    .refine((s) => s.length > 0 && Buffer.byteLength(s, 'utf8') <= 63 && !s.includes('\0'), {
      error: 'must be a schema name of 1 to 63 bytes',
    })
    .default('tuzhan_sync'),
  /** What a start does with a slot the server invalidated or that vanished (docs/design.md, "First start and re-sync"). */
  onSlotLost: z.enum(['stop', 'resync']).default('stop'),
  /**
   * Failover slot (PostgreSQL 17+): auto where the server has them, on (a start on an older server
   * fails), off. true and false read as on and off (YAML 1.1 reads on/off as booleans).
   */
  failover: z
    .preprocess(
      (v) => (v === true || v === 'true' ? 'on' : v === false || v === 'false' ? 'off' : v),
      z.enum(['auto', 'on', 'off']),
    )
    .default('auto'),
  /** Warn when the slot keeps more WAL than this and the server sets no max_slot_wal_keep_size. */
  lagWarnBytes: int(0).default(1024 ** 3),
  /** TLS to the database, instead of (or on top of) `sslmode` and the other ssl* URL parameters. */
  ssl: z
    .strictObject({
      ca: nonEmpty().optional(),
      cert: nonEmpty().optional(),
      key: nonEmpty().optional(),
      /** full: certificate and host name; ca: certificate only; none: encrypt without checking. */
      verify: z.enum(['full', 'ca', 'none']).default('full'),
    })
    .optional(),
});

export const tuzhanSchema = z.strictObject({
  baseUrl: z
    .string()
    .refine((s) => isUrl(s, ['http:', 'https:']), { error: 'must be an http:// or https:// URL' })
    // The path is appended as is, so `https://host/` + `/api/...` must not give `//api`.
    .transform((s) => s.replace(/\/+$/, ''))
    .default('https://integrate.rabbitpre.com'),
  batchAddPath: z
    .string()
    .regex(/^\/\S*$/, { error: 'must be a path starting with /' })
    .default('/api/integrate/audience/group/rel/batchAdd'),
  token: nonEmpty().optional(),
  appId: nonEmpty().optional(),
  appSecret: nonEmpty().optional(),
  timeoutMs: int(1).default(10_000),
  concurrency: int(1).default(4),
  /** Fractions are fine: 0.5 is one request every two seconds. */
  ratePerSecond: z.preprocess(fromText, z.number().min(0)).default(0),
  /** /readyz turns false once the platform has answered only failures for this long. */
  notReadyAfterMs: int(0).default(30_000),
});

export const MAX_BATCH_SIZE = 500;

export const batchingSchema = z.strictObject({
  maxBatchSize: int(1, MAX_BATCH_SIZE).default(MAX_BATCH_SIZE),
  debounceMs: int(0).default(200),
  maxWaitMs: int(0).default(2000),
  maxBufferedRows: int(1).default(10_000),
});

export type Listen = { host: string; port: number } | null;

/**
 * `host:port`, `[ipv6]:port`, `:port` or a bare port (both on 127.0.0.1: the metrics are not
 * published beyond the host unless asked, e.g. `0.0.0.0:9464`), or `off` / `false` for none.
 */
export function parseListen(v: unknown): Listen | string {
  const expected = 'expected host:port, :port, a port number, or off';
  if (v === false || (typeof v === 'string' && v.trim().toLowerCase() === 'off')) return null;
  let host = '127.0.0.1';
  let portText: string;
  if (typeof v === 'number') portText = String(v);
  else if (typeof v === 'string') {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]*))?:?(\d+)$/.exec(v.trim());
    if (!m || (m[2] !== undefined && m[2] !== '' && !v.includes(':'))) return expected;
    host = m[1] ?? (m[2] || host);
    portText = m[3]!;
  } else return expected;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) return 'port must be an integer from 1 to 65535';
  return { host, port };
}

export const httpSchema = z.strictObject({
  listen: z
    .unknown()
    .transform((v, ctx) => {
      const parsed = parseListen(v);
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', message: parsed });
        return z.NEVER;
      }
      return parsed;
    })
    .default({ host: '127.0.0.1', port: 9464 }),
  /** Required when `listen` is not loopback: every endpoint but /healthz and /readyz asks for it. */
  token: nonEmpty().optional(),
});

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export const logSchema = z.strictObject({
  level: z
    .preprocess((v) => (typeof v === 'string' ? v.trim().toLowerCase() : v), z.enum(LOG_LEVELS))
    .default('info'),
});

const identityColumns = Object.fromEntries(IDENTITY_FIELDS.map((f) => [f, nonEmpty().optional()])) as Record<
  (typeof IDENTITY_FIELDS)[number],
  z.ZodOptional<z.ZodString>
>;

export const columnsSchema = z.strictObject({ ...identityColumns, groups: nonEmpty() });

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()], {
  error: 'expected a scalar (string, number, boolean or null) or a list of scalars',
});

export const whereSchema = z.record(
  nonEmpty(),
  z.union([scalar, z.array(scalar).min(1)], {
    error: 'expected a scalar (string, number, boolean or null) or a non-empty list of scalars',
  }),
);

export const matchSchema = z.strictObject({
  isMatching: bool(),
  matchingType: z.preprocess(fromText, z.literal([1, 2])).optional(),
  identifyWay: z.preprocess(fromText, z.literal([1, 2])).optional(),
  accurateMatchType: z.enum(ACCURATE_MATCH_TYPES).optional(),
  accurateMatchValue: nonEmpty().optional(),
  identityType: z.enum(IDENTITY_FIELDS).optional(),
});

export const SOURCE_NAME = /^[A-Za-z0-9_.-]+$/;

export const sourceSchema = z.strictObject({
  // The name becomes a metrics label and a sync_status value.
  name: z
    .string()
    .regex(SOURCE_NAME, { error: 'must match ^[A-Za-z0-9_.-]+$ (it is used as a metrics label)' }),
  table: nonEmpty(),
  mode: z.enum(['row', 'membership']),
  /** A single column may be written without the list brackets. */
  key: z
    .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(nonEmpty()).min(1))
    .refine((cols) => new Set(cols).size === cols.length, { error: 'lists a column twice' })
    .optional(),
  columns: columnsSchema,
  where: whereSchema.optional(),
  match: matchSchema,
  deleteLookup: z.enum(['none', 'state']).default('none'),
  /** resync: the source is re-synced as of the truncating transaction's end (its removals guarded). */
  onTruncate: z.enum(['resync', 'ignore', 'delete-all']).default('resync'),
  /** This source's limit on mass removals (./guard.ts); the top level's when absent. */
  guard: guardSchema.optional(),
});

/** A missing or empty (`postgres:` with nothing under it) section is the same as `{}`. */
function orEmpty<T extends z.ZodType>(schema: T, empty: object) {
  return z.preprocess((v) => v ?? empty, schema);
}

export const configSchema = z.strictObject({
  postgres: orEmpty(postgresSchema, {}),
  tuzhan: orEmpty(tuzhanSchema, {}),
  batching: orEmpty(batchingSchema, {}),
  http: orEmpty(httpSchema, {}),
  log: orEmpty(logSchema, {}),
  guard: orEmpty(guardSchema, {}),
  sources: orEmpty(z.array(sourceSchema), []),
});

export type ParsedConfig = z.output<typeof configSchema>;

/** Known keys per object, by path with indexes replaced by `[]`: for "did you mean" hints. */
export const KNOWN_KEYS: ReadonlyMap<string, readonly string[]> = new Map([
  ['', Object.keys(configSchema.shape)],
  ['postgres', Object.keys(postgresSchema.shape)],
  ['postgres.ssl', ['ca', 'cert', 'key', 'verify']],
  ['tuzhan', Object.keys(tuzhanSchema.shape)],
  ['batching', Object.keys(batchingSchema.shape)],
  ['http', Object.keys(httpSchema.shape)],
  ['log', Object.keys(logSchema.shape)],
  ['guard', ['maxRemovals']],
  ['sources[].guard', ['maxRemovals']],
  ['sources[]', Object.keys(sourceSchema.shape)],
  ['sources[].columns', Object.keys(columnsSchema.shape)],
  ['sources[].match', Object.keys(matchSchema.shape)],
]);
