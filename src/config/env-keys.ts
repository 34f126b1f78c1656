/**
 * An environment variable for every config key, as compose files and Kubernetes manifests set
 * them: `TUZHAN_CDC__` and the key's path, its parts separated by `__`, each written in capitals
 * with `_` between words: `TUZHAN_CDC__BATCHING__MAX_WAIT_MS=500` sets `batching.maxWaitMs`. A part
 * names a key whatever its case and underscores (`MAXWAITMS` works too), so a key added to the
 * schema later has its variable at once.
 *
 * Lists: a source is named by its index in the file or by its name (`TUZHAN_CDC__SOURCES__0__...`,
 * `TUZHAN_CDC__SOURCES__PROFILES__...`, the name in capitals with `_` for `-` and `.`). A variable
 * changes a source the file lists; it does not add one. A whole list or mapping is one variable in
 * YAML's flow style (`TUZHAN_CDC__SOURCES__0__KEY=[cust_no, region]`, `..._MATCH={isMatching:
 * false}`): a value that starts with `[` or `{` is read as YAML, every other as text, which the
 * validation then reads as the file's text is read (`"500"` is the number 500 where a number is
 * expected). Secrets (tokens, the database URL) are always text.
 *
 * `where` keys are column names, case-sensitive: a part names a column the file's `where` already
 * has (case-insensitively), or else the column in lower case; `..._WHERE={"Tier": gold}` for others.
 */
import { parse } from 'yaml';
import { KNOWN_KEYS } from './schema.js';
import { envValue, type Env, type EnvProblem, type KeyOverride } from './env.js';

export const ENV_KEY_PREFIX = 'TUZHAN_CDC__';

type Tree = Record<string, unknown>;
type Path = (string | number)[];

const isMapping = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);
const squash = (s: string): string => s.replace(/[_\-.]/g, '').toLowerCase();

/** Keys whose values are secrets: never parsed as YAML (a token may start with `{`). */
function isSecret(path: Path): boolean {
  const last = path[path.length - 1];
  return last === 'token' || last === 'appSecret' || (path[0] === 'postgres' && last === 'url');
}

/** `sources[].match` for ['sources', 0, 'match']: the key of KNOWN_KEYS. */
function shape(path: Path): string {
  return path
    .map((s) => (typeof s === 'number' ? '[]' : s))
    .join('.')
    .replace(/\.\[\]/g, '[]');
}

/** `MAX_WAIT_MS` -> `maxWaitMs`, for a key the schema does not list (validation then names it). */
function camel(part: string): string {
  return part.toLowerCase().replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The key a variable's part names under `path` of the tree: a known key, else a key the tree
 * already has there, else a guess validation will report as unknown (with the nearest known key).
 */
function keyFor(part: string, path: Path, node: unknown): string {
  const known = KNOWN_KEYS.get(shape(path));
  const hit = known?.find((k) => squash(k) === squash(part));
  if (hit !== undefined) return hit;
  const existing = isMapping(node) ? Object.keys(node) : [];
  if (shape(path) === 'sources[].where')
    return existing.find((k) => k.toLowerCase() === part.toLowerCase()) ?? part.toLowerCase();
  return existing.find((k) => squash(k) === squash(part)) ?? camel(part);
}

/** The index of the source a part names (its index, or its name), or a problem. */
function sourceIndex(part: string, sources: unknown[]): number | string {
  const listed = sources.map(
    (s, i) => `${i}${isMapping(s) && typeof s.name === 'string' ? ` (${s.name})` : ''}`,
  );
  if (/^\d+$/.test(part) && Number(part) < sources.length) return Number(part);
  const byName = sources.findIndex(
    (s) => isMapping(s) && typeof s.name === 'string' && squash(s.name) === squash(part),
  );
  if (byName >= 0 && !/^\d+$/.test(part)) return byName;
  return `names no source the config lists (${listed.join(', ') || 'none'}); a variable changes a listed source, by index or name, and does not add one`;
}

/** The value a variable gives its key: YAML for a list or mapping, else the text. */
function valueOf(text: string, path: Path): unknown {
  if (isSecret(path) || !/^\s*[[{]/.test(text)) return text;
  try {
    return parse(text) as unknown;
  } catch (err) {
    throw new Error(`is not a YAML list or mapping: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Applies the `TUZHAN_CDC__...` variables to the tree in place, shorter paths first (a whole list
 * before a key of one of its entries). Returns what was set; a variable that names nothing it can
 * set is a problem naming it.
 */
export function applyKeyVariables(root: Tree, env: Env, problems: EnvProblem[]): KeyOverride[] {
  const names = new Set<string>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_KEY_PREFIX) || value === undefined || value === '') continue;
    names.add(name.endsWith('_FILE') ? name.slice(0, -'_FILE'.length) : name);
  }
  const parts = (name: string) => name.slice(ENV_KEY_PREFIX.length).split('__');
  const ordered = [...names].sort((a, b) => parts(a).length - parts(b).length || a.localeCompare(b));
  const applied: KeyOverride[] = [];
  for (const name of ordered) {
    const segments = parts(name);
    if (segments.some((s) => !/^[A-Za-z0-9_]*[A-Za-z0-9]$/.test(s))) {
      problems.push({
        path: null,
        message: `${name}: expected ${ENV_KEY_PREFIX}SECTION__KEY, parts separated by __`,
      });
      continue;
    }
    const found = envValue(env, name, problems, null);
    if (found === undefined) continue;
    const target = place(root, segments);
    if (typeof target === 'string') {
      problems.push({ path: null, message: `${name}: ${target}` });
      continue;
    }
    try {
      const value = valueOf(found.value, target.path);
      target.parent[target.key] = value;
      applied.push({ path: target.path, value, from: found.from });
    } catch (err) {
      problems.push({ path: target.path, message: `${(err as Error).message} (from ${found.from})` });
    }
  }
  return applied;
}

/** Where a variable's parts lead: the mapping to set and its key (missing mappings are created). */
function place(root: Tree, segments: string[]): { parent: Tree; key: string; path: Path } | string {
  let node: Tree = root;
  const path: Path = [];
  for (let i = 0; i < segments.length; i++) {
    const key = keyFor(segments[i] as string, path, node);
    if (i === segments.length - 1) return { parent: node, key, path: [...path, key] };
    path.push(key);
    let next = node[key];
    if (Array.isArray(next)) {
      const index = sourceIndex(segments[++i] as string, next);
      if (typeof index === 'string') return index;
      path.push(index);
      if (i === segments.length - 1) return `sets a whole entry of ${key}; set its keys, or the whole list`;
      next = next[index];
      if (!isMapping(next)) return `${key}[${index}] is not a mapping`;
    } else if (next === undefined || next === null) {
      next = node[key] = {};
    } else if (!isMapping(next)) {
      return `${path.join('.')} is not a mapping in the config`;
    }
    node = next as Tree;
  }
  return 'names no key';
}
