/**
 * Turns the YAML tree (after the environment is applied) into problem lines or a Config. Each
 * problem is one line starting with the key path, e.g. `sources[1] (memberships).match.identifyWay:
 * is required for fuzzy matching ...`. All problems are collected; none hides another.
 */
import type * as z from 'zod';
import {
  batchingSchema,
  configSchema,
  httpSchema,
  KNOWN_KEYS,
  matchSchema,
  SOURCE_NAME,
  type ParsedConfig,
} from './schema.js';
import { tryParseTableName } from './table-name.js';
import { ACCURATE_MATCH_TYPES, IDENTITY_FIELDS, type Config, type SourceConfig } from './types.js';
import { editDistance } from './closest.js';

export type Path = readonly (string | number)[];
type Tree = Record<string, unknown>;

export function isMapping(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What the validator knows besides the tree: which keys an environment variable set. */
export interface ValidationContext {
  root: Tree;
  /** `postgres.url` -> `DATABASE_URL`, for keys set by an override variable. */
  overridden: ReadonlyMap<string, string>;
}

/** Keys whose values are never echoed in a message. */
function isSecretPath(path: Path): boolean {
  const last = path[path.length - 1];
  return last === 'token' || last === 'appSecret' || (path[0] === 'postgres' && last === 'url');
}

/** `sources[1] (memberships).match.identifyWay`, plus `(from TUZHAN_TOKEN)` for overridden keys. */
export function formatPath(path: Path, ctx: ValidationContext): string {
  let out = '';
  path.forEach((seg, i) => {
    if (typeof seg === 'number') {
      out += `[${seg}]`;
      if (i === 1 && path[0] === 'sources') {
        const source = valueAt(ctx.root, path.slice(0, 2));
        const name = isMapping(source) ? source.name : undefined;
        if (typeof name === 'string' && SOURCE_NAME.test(name)) out += ` (${name})`;
      }
    } else out += (out === '' ? '' : '.') + (/^[A-Za-z_][\w-]*$/.test(seg) ? seg : JSON.stringify(seg));
  });
  const from = ctx.overridden.get(path.join('.'));
  return (out || '(top level)') + (from === undefined ? '' : ` (from ${from})`);
}

function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const seg of path) {
    if (typeof seg === 'number') node = Array.isArray(node) ? node[seg] : undefined;
    else node = isMapping(node) ? node[seg] : undefined;
  }
  return node;
}

/**
 * A bad value, as shown in a message. Strings are only quoted when `quoteStrings` (the key takes
 * one of a few fixed words, such as `mode`); anywhere else a string may be a secret put under
 * the wrong key or substituted from the wrong variable, so it is only called "a string".
 */
function describe(v: unknown, path: Path, quoteStrings = false): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') {
    // A number written as text (`${VAR}`, an environment variable) is shown as the number.
    if (!isSecretPath(path) && /^-?\d+(\.\d+)?$/.test(v.trim())) return v.trim();
    return quoteStrings && !isSecretPath(path) && v.length <= 40 ? JSON.stringify(v) : 'a string';
  }
  return String(v);
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  const lower = key.toLowerCase();
  const prefix = known.find((k) => k.toLowerCase().startsWith(lower) || lower.startsWith(k.toLowerCase()));
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3)))
    return ` (did you mean \`${best}\`?)`;
  if (prefix !== undefined && key.length >= 3) return ` (did you mean \`${prefix}\`?)`;
  return known.length > 0 ? ` (known keys: ${known.join(', ')})` : '';
}

/** Required keys an override variable can provide instead. */
const OVERRIDE_HINTS = new Map([['postgres.url', 'DATABASE_URL']]);

function issueLines(issue: z.core.$ZodIssue, ctx: ValidationContext): string[] {
  const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const known = KNOWN_KEYS.get(
      path
        .map((s) => (typeof s === 'number' ? '[]' : s))
        .join('.')
        .replace(/\.\[\]/g, '[]'),
    );
    return issue.keys.map((k) => `${formatPath([...path, k], ctx)}: unknown key${suggest(k, known ?? [])}`);
  }
  const input = valueAt(ctx.root, path);
  const at = formatPath(path, ctx);
  switch (issue.code) {
    case 'invalid_type': {
      if (input === undefined) {
        const envVar = OVERRIDE_HINTS.get(path.join('.'));
        return [`${at}: is required${envVar ? ` (or set ${envVar})` : ''}`];
      }
      return [
        `${at}: expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describe(input, path)}`,
      ];
    }
    case 'too_big':
      if (issue.origin === 'number')
        return [`${at}: must be at most ${issue.maximum}, got ${describe(input, path)}`];
      return [
        `${at}: must have at most ${issue.maximum} ${issue.origin === 'string' ? 'characters' : 'items'}`,
      ];
    case 'too_small':
      if (issue.origin === 'number')
        return [`${at}: must be at least ${issue.minimum}, got ${describe(input, path)}`];
      if (issue.minimum === 1) return [`${at}: must not be empty`];
      return [
        `${at}: must have at least ${issue.minimum} ${issue.origin === 'string' ? 'characters' : 'items'}`,
      ];
    case 'invalid_value': {
      const values = issue.values.map((v) => (typeof v === 'string' ? v : String(v)));
      const expected = values.length <= 2 ? values.join(' or ') : `one of ${values.join(', ')}`;
      return [`${at}: expected ${expected}, got ${describe(input, path, true)}`];
    }
    default:
      return [`${at}: ${issue.message}`];
  }
}

/** One field of an object schema parsed on its own, so cross-key rules see every valid field. */
function field<S extends z.ZodObject, K extends keyof S['shape'] & string>(
  schema: S,
  raw: unknown,
  key: K,
): z.output<S['shape'][K]> | undefined {
  const result = (schema.shape[key] as z.ZodType).safeParse(isMapping(raw) ? raw[key] : undefined);
  return result.success ? (result.data as z.output<S['shape'][K]>) : undefined;
}

const present = (m: Tree, key: string) => m[key] !== undefined && m[key] !== null;

function credentialProblems(ctx: ValidationContext): string[] {
  const t = ctx.root.tuzhan;
  if (!isMapping(t)) return [];
  const at = (key: string) => formatPath(['tuzhan', key], ctx);
  const [token, appId, appSecret] = [present(t, 'token'), present(t, 'appId'), present(t, 'appSecret')];
  if (token && (appId || appSecret))
    return [`${at('token')}: set either token or appId + appSecret, not both`];
  if (!token && !appId && !appSecret)
    return [
      `${at('token')}: is required: set token (or TUZHAN_TOKEN), or appId and appSecret (or TUZHAN_APP_ID and TUZHAN_APP_SECRET)`,
    ];
  if (appId && !appSecret) return [`${at('appSecret')}: is required with appId (or set TUZHAN_APP_SECRET)`];
  if (appSecret && !appId) return [`${at('appId')}: is required with appSecret (or set TUZHAN_APP_ID)`];
  return [];
}

function matchProblems(source: Tree, i: number, ctx: ValidationContext): string[] {
  const m = source.match;
  if (!isMapping(m)) return [];
  const at = (key: string) => formatPath(['sources', i, 'match', key], ctx);
  const problems: string[] = [];
  const isMatching = field(matchSchema, m, 'isMatching');
  const matchingType = field(matchSchema, m, 'matchingType');
  if (isMatching === true && !present(m, 'matchingType'))
    problems.push(`${at('matchingType')}: is required when isMatching is true (1 exact, 2 fuzzy)`);
  const onlyFor = (keys: string[], what: string) => {
    for (const k of keys) if (present(m, k)) problems.push(`${at(k)}: only applies to ${what}`);
  };
  if (matchingType === 2) {
    if (!present(m, 'identifyWay'))
      problems.push(
        `${at('identifyWay')}: is required for fuzzy matching (matchingType 2): 1 = unionid>openid>phone>thirdId, 2 = thirdId>phone>openid>unionid`,
      );
    onlyFor(['accurateMatchType', 'accurateMatchValue', 'identityType'], 'exact matching (matchingType 1)');
  }
  if (matchingType === 1) {
    if (!present(m, 'accurateMatchType'))
      problems.push(
        `${at('accurateMatchType')}: is required for exact matching (matchingType 1): one of ${ACCURATE_MATCH_TYPES.join(', ')}`,
      );
    const identityType = field(matchSchema, m, 'identityType');
    if (!present(m, 'identityType'))
      problems.push(
        `${at('identityType')}: is required for exact matching (matchingType 1): one of ${IDENTITY_FIELDS.join(', ')}`,
      );
    else if (
      identityType !== undefined &&
      isMapping(source.columns) &&
      !present(source.columns, identityType)
    )
      problems.push(
        `${at('identityType')}: ${identityType} is not mapped in columns; add columns.${identityType} or pick a mapped identity`,
      );
    onlyFor(['identifyWay'], 'fuzzy matching (matchingType 2)');
  }
  return problems;
}

function sourceProblems(ctx: ValidationContext): string[] {
  const sources = ctx.root.sources;
  if (sources === undefined || sources === null || (Array.isArray(sources) && sources.length === 0))
    return ['sources: no sources; list at least one table to sync'];
  if (!Array.isArray(sources)) return [];
  const problems: string[] = [];
  const firstByName = new Map<string, number>();
  sources.forEach((source: unknown, i) => {
    if (!isMapping(source)) return;
    const at = (...keys: string[]) => formatPath(['sources', i, ...keys], ctx);
    const name = source.name;
    if (typeof name === 'string') {
      const first = firstByName.get(name);
      if (first === undefined) firstByName.set(name, i);
      else
        problems.push(
          `${at('name')}: duplicate source name ${JSON.stringify(name)} (also sources[${first}])`,
        );
    }
    if (typeof source.table === 'string' && source.table !== '') {
      const parsed = tryParseTableName(source.table);
      if (typeof parsed === 'string')
        problems.push(`${at('table')}: ${JSON.stringify(source.table)} ${parsed}`);
    }
    const columns = source.columns;
    if (isMapping(columns) && !IDENTITY_FIELDS.some((f) => present(columns, f)))
      problems.push(
        `${at('columns')}: no identity column at all; map at least one of ${IDENTITY_FIELDS.join(', ')}`,
      );
    problems.push(...matchProblems(source, i, ctx));
  });
  return problems;
}

/** Whether a listen host only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function httpProblems(ctx: ValidationContext): string[] {
  const h = ctx.root.http;
  if (!isMapping(h)) return [];
  const listen = field(httpSchema, h, 'listen');
  if (listen && !isLoopbackHost(listen.host) && !present(h, 'token'))
    return [
      `${formatPath(['http', 'token'], ctx)}: is required when http.listen is not loopback (${listen.host}): the endpoints would be open to the network`,
    ];
  return [];
}

function batchingProblems(ctx: ValidationContext): string[] {
  const b = ctx.root.batching;
  const debounceMs = field(batchingSchema, b, 'debounceMs');
  const maxWaitMs = field(batchingSchema, b, 'maxWaitMs');
  if (debounceMs !== undefined && maxWaitMs !== undefined && debounceMs > maxWaitMs)
    return [
      `${formatPath(['batching', 'debounceMs'], ctx)}: must not exceed batching.maxWaitMs (${debounceMs} > ${maxWaitMs})`,
    ];
  return [];
}

/** Validates the tree; returns the Config, or the problem lines when there is any. */
export function validate(ctx: ValidationContext): { config: Config } | { problems: string[] } {
  const result = configSchema.safeParse(ctx.root);
  const problems = [
    ...(result.success ? [] : result.error.issues.flatMap((issue) => issueLines(issue, ctx))),
    ...credentialProblems(ctx),
    ...batchingProblems(ctx),
    ...httpProblems(ctx),
    ...sourceProblems(ctx),
  ];
  if (problems.length > 0 || !result.success) return { problems: sortProblems([...new Set(problems)]) };
  return { config: toConfig(result.data) };
}

const SECTION_ORDER = ['postgres', 'tuzhan', 'batching', 'http', 'log', 'guard', 'sources'];

/** File order: by section, then source index (zod reports unknown keys after everything else). */
function sortProblems(lines: string[]): string[] {
  const rank = (line: string) => {
    const m = /^(\w+)(?:\[(\d+)\])?/.exec(line);
    const section = SECTION_ORDER.indexOf(m?.[1] ?? '');
    return (section + 1) * 1e6 + Number(m?.[2] ?? 0);
  };
  return lines
    .map((line, i) => ({ line, i, r: rank(line) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.line);
}

function toConfig(parsed: ParsedConfig): Config {
  const sources = parsed.sources.map((s): SourceConfig => {
    const t = tryParseTableName(s.table);
    if (typeof t === 'string') throw new Error(`unreachable: table ${s.table} was validated`);
    return {
      name: s.name,
      table: s.table,
      schema: t.schema,
      tableName: t.table,
      mode: s.mode,
      ...(s.key === undefined ? {} : { key: s.key }),
      columns: s.columns,
      ...(s.where === undefined ? {} : { where: s.where }),
      match: s.match,
      deleteLookup: s.deleteLookup,
      onTruncate: s.onTruncate,
      guard: s.guard ?? parsed.guard,
    };
  });
  return { ...parsed, sources };
}
