/**
 * The environment's part in the config: `${VAR}` references in values, and the override variables.
 * Works on the plain JS tree the YAML parser produced, before validation.
 *
 * Every variable may instead name a file holding its value, as `<VAR>_FILE` (the convention of
 * Docker secrets and of the official postgres image): `TUZHAN_TOKEN_FILE=/run/secrets/tuzhan_token`
 * stands for TUZHAN_TOKEN, and `${TUZHAN_CDC_HTTP_TOKEN}` in the file is read from
 * TUZHAN_CDC_HTTP_TOKEN_FILE when only that is set. Trailing newlines of the file are dropped.
 * Setting both is a problem: which one was meant cannot be guessed.
 */
import { readFileSync } from 'node:fs';

export type Env = Readonly<Record<string, string | undefined>>;

/** Environment variable -> the key it replaces. Applied when the variable is set and non-empty. */
export const ENV_OVERRIDES = [
  ['DATABASE_URL', ['postgres', 'url']],
  ['TUZHAN_BASE_URL', ['tuzhan', 'baseUrl']],
  ['TUZHAN_TOKEN', ['tuzhan', 'token']],
  ['TUZHAN_APP_ID', ['tuzhan', 'appId']],
  ['TUZHAN_APP_SECRET', ['tuzhan', 'appSecret']],
  ['LOG_LEVEL', ['log', 'level']],
  // The ops endpoint's and console's token: a secret, so it need not be written into the file.
  ['TUZHAN_CDC_HTTP_TOKEN', ['http', 'token']],
] as const satisfies readonly (readonly [string, readonly [string, string]])[];

/**
 * A problem found while applying the environment: the key path and the text after it (null for a
 * variable that names no key: the message then starts with the variable).
 */
export interface EnvProblem {
  path: (string | number)[] | null;
  message: string;
}

/** A key set by a `TUZHAN_CDC__...` variable (env-keys.ts). */
export interface KeyOverride {
  path: (string | number)[];
  value: unknown;
  /** The variable it was read from (`..._FILE` when from a file). */
  from: string;
}

type Tree = Record<string, unknown>;

function isMapping(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Set and non-empty: an empty variable (`TUZHAN_TOKEN=` in a compose .env file) counts as unset. */
function setValue(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/**
 * The value of `name`, from the variable or the file `<name>_FILE` names, with the variable it came
 * from; undefined when neither is set. A problem (both set, an unreadable file) is thrown as text.
 */
function lookup(env: Env, name: string): { value: string; from: string } | undefined {
  const direct = setValue(env, name);
  const file = setValue(env, `${name}_FILE`);
  if (direct !== undefined && file !== undefined)
    throw new EnvLookupError(`both ${name} and ${name}_FILE are set; set only one`);
  if (direct !== undefined) return { value: direct, from: name };
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const why = (err as { code?: string }).code ?? (err as Error).message;
    throw new EnvLookupError(`${name}_FILE: cannot read ${file} (${why})`);
  }
  const value = text.replace(/[\r\n]+$/, '');
  if (value === '') throw new EnvLookupError(`${name}_FILE: ${file} is empty`);
  return { value, from: `${name}_FILE` };
}

class EnvLookupError extends Error {}

/** `lookup`, with a problem recorded at `path` instead of thrown. */
export function envValue(
  env: Env,
  name: string,
  problems: EnvProblem[],
  path: (string | number)[] | null,
): { value: string; from: string } | undefined {
  try {
    return lookup(env, name);
  } catch (err) {
    if (!(err instanceof EnvLookupError)) throw err;
    problems.push({ path, message: err.message });
    return undefined;
  }
}

/**
 * Applies the override variables in place. Returns the paths they set (joined with `.`), mapped
 * to the variable name, so messages can say where a bad value came from and substitution can
 * leave those keys alone (a `${TUZHAN_TOKEN}` in the file is not an error when TUZHAN_TOKEN
 * overrides the key anyway).
 *
 * Credentials are one choice, so the environment replaces them as a whole: when any of
 * TUZHAN_TOKEN / TUZHAN_APP_ID / TUZHAN_APP_SECRET is set, the file's credentials of the other
 * kind are dropped. The documented example config says `token: ${TUZHAN_TOKEN}`; an operator who sets
 * TUZHAN_APP_ID + TUZHAN_APP_SECRET instead gets app credentials, not an error about the unset
 * TUZHAN_TOKEN. A file `appId` is kept when only TUZHAN_APP_SECRET is set (the usual split:
 * the id in the file, the secret in the environment). Setting TUZHAN_TOKEN together with an app
 * variable is reported by validation as both kinds of credentials.
 */
export function applyOverrides(
  root: Tree,
  env: Env,
  problems: EnvProblem[] = [],
  keyed: readonly KeyOverride[] = [],
): Map<string, string> {
  const applied = new Map<string, string>();
  for (const k of keyed) applied.set(k.path.join('.'), k.from);
  // Looked up once each; a problem with one (both X and X_FILE set, say) is reported once, at its key.
  const values = new Map(
    ENV_OVERRIDES.map(([name, path]) => [name, envValue(env, name, problems, [...path])] as const),
  );
  // The TUZHAN_CDC__TUZHAN__... variables of the credentials count as these do.
  const byKey = (key: string) => applied.has(`tuzhan.${key}`);
  const tokenSet = values.get('TUZHAN_TOKEN') !== undefined || byKey('token');
  const appSet =
    values.get('TUZHAN_APP_ID') !== undefined ||
    values.get('TUZHAN_APP_SECRET') !== undefined ||
    byKey('appId') ||
    byKey('appSecret');
  if (tokenSet || appSet) {
    const tuzhan = section(root, 'tuzhan');
    if (tuzhan) {
      if (!tokenSet) delete tuzhan.token;
      if (!appSet) {
        delete tuzhan.appId;
        delete tuzhan.appSecret;
      }
    }
  }
  for (const [name, [sectionKey, key]] of ENV_OVERRIDES) {
    const found = values.get(name);
    if (found === undefined) continue;
    const path = `${sectionKey}.${key}`;
    const other = applied.get(path);
    if (other !== undefined) {
      problems.push({
        path: [sectionKey, key],
        message: `both ${found.from} and ${other} are set; set only one`,
      });
      continue;
    }
    const target = section(root, sectionKey);
    if (!target) continue; // the section is not a mapping: validation reports it
    target[key] = found.value;
    applied.set(path, found.from);
  }
  return applied;
}

function section(root: Tree, key: string): Tree | undefined {
  if (root[key] === undefined || root[key] === null) root[key] = {};
  const s = root[key];
  return isMapping(s) ? s : undefined;
}

/** `${NAME}`, `${NAME:-default}`, or the escape `$${` for a literal `${`. */
const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The variables a value was substituted from, by key path: the name referenced and the one read. */
export type References = Map<string, Array<{ name: string; from: string }>>;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string value (never in keys) in place.
 * An unset or empty VAR without a default is a problem naming the key path and the variable.
 * Keys listed in `skip` (set by an override) are left alone. Each variable read is added to
 * `references` under the key's path.
 */
export function substituteVariables(
  root: Tree,
  env: Env,
  skip: ReadonlyMap<string, string>,
  references: References = new Map(),
): EnvProblem[] {
  const problems: EnvProblem[] = [];
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') return substituteString(node, env, path, problems, references);
    if (Array.isArray(node)) {
      node.forEach((v, i) => (node[i] = walk(v, [...path, i])));
    } else if (isMapping(node)) {
      for (const key of Object.keys(node)) {
        const p = [...path, key];
        if (skip.has(p.join('.'))) continue;
        node[key] = walk(node[key], p);
      }
    }
    return node;
  };
  walk(root, []);
  return problems;
}

function substituteString(
  s: string,
  env: Env,
  path: (string | number)[],
  problems: EnvProblem[],
  references: References,
): string {
  if (!s.includes('${')) return s;
  return s.replace(REFERENCE, (match, body: string | undefined) => {
    if (match === '$${') return '${';
    if (body === undefined) {
      problems.push({ path, message: 'has an unterminated ${ reference' });
      return match;
    }
    const sep = body.indexOf(':-');
    const name = sep === -1 ? body : body.slice(0, sep);
    if (!NAME.test(name)) {
      // The body is not echoed: a malformed reference may be part of a secret.
      problems.push({
        path,
        message: 'has a malformed ${...} reference; expected ${NAME} or ${NAME:-default}',
      });
      return match;
    }
    const before = problems.length;
    const found = envValue(env, name, problems, path);
    if (found !== undefined) {
      const key = path.join('.');
      references.set(key, [...(references.get(key) ?? []), { name, from: found.from }]);
      return found.value;
    }
    if (problems.length > before) return match;
    if (sep !== -1) return body.slice(sep + 2);
    problems.push({ path, message: `environment variable ${name} is not set` });
    return match;
  });
}
