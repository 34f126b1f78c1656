/**
 * Reads the config: YAML text, then the environment (`${VAR}` and override variables, see
 * `env.ts`), then validation (`schema.ts`, `validate.ts`). The one place that reads process.env.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, errorMessage } from '../errors.js';
import { applyOverrides, substituteVariables, type Env, type EnvProblem, type References } from './env.js';
import { applyKeyVariables } from './env-keys.js';
import { recordOrigins, type Origin } from './origins.js';
import type { Config } from './types.js';
import { formatPath, isMapping, validate } from './validate.js';

export { parseTableName, type TableName } from './table-name.js';
export { ENV_OVERRIDES } from './env.js';

export const DEFAULT_CONFIG_FILE = 'config/bridge.yaml';

export interface LoadConfigOptions {
  /** The YAML file; default `config/bridge.yaml` (relative to the working directory). */
  file?: string;
  /** The YAML itself; when given the file is not read (`file` then only names it in messages). */
  text?: string;
  /** Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Loads, validates and deeply freezes the configuration.
 * @throws ConfigError listing every problem found, one line each, naming the key path.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env: Env = opts.env ?? process.env;
  const label = opts.file ?? (opts.text === undefined ? DEFAULT_CONFIG_FILE : 'config');
  const text = opts.text ?? readConfigFile(opts.file ?? DEFAULT_CONFIG_FILE);
  const root = parseYaml(text, label);

  const written = opts.file === undefined ? [] : leafPaths(root);
  const overrideProblems: EnvProblem[] = [];
  const keyed = applyKeyVariables(root, env, overrideProblems);
  const overridden = applyOverrides(root, env, overrideProblems, keyed);
  const ctx = { root, overridden };
  const references: References = new Map();
  const envProblems = [...overrideProblems, ...substituteVariables(root, env, overridden, references)].map(
    (p) => (p.path === null ? p.message : `${formatPath(p.path, ctx)}: ${p.message}`),
  );
  const result = validate(ctx);
  if ('config' in result && envProblems.length === 0) {
    const config = deepFreeze(result.config);
    recordOrigins(config, origins(opts.file ?? 'the config', written, references, overridden));
    return config;
  }

  // A key whose variable is missing also fails its own check (`${DATABASE_URL}` is no URL); the
  // variable is the cause, so only that line is kept.
  const envPaths = envProblems.map((line) => line.slice(0, line.indexOf(': ') + 2));
  const rest =
    'problems' in result ? result.problems.filter((l) => !envPaths.some((p) => l.startsWith(p))) : [];
  throw new ConfigError([...new Set([...envProblems, ...rest])]);
}

/** Every scalar's key path in the tree, dotted (`sources.0.columns.phone`). */
function leafPaths(node: unknown, path: string[] = []): string[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => leafPaths(v, [...path, String(i)]));
  if (isMapping(node)) return Object.entries(node).flatMap(([k, v]) => leafPaths(v, [...path, k]));
  return [path.join('.')];
}

/** Where each value came from; an override beats the file, a substitution qualifies it. */
function origins(
  file: string,
  written: readonly string[],
  references: References,
  overridden: ReadonlyMap<string, string>,
): Map<string, Origin> {
  const out = new Map<string, Origin>();
  for (const path of written) out.set(path, { kind: 'file', file });
  for (const [path, refs] of references) out.set(path, { kind: 'substitution', file, references: refs });
  for (const [path, variable] of overridden) out.set(path, { kind: 'override', variable });
  return out;
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT') throw new ConfigError([`config file ${file} not found (use --config FILE)`]);
    throw new ConfigError([`cannot read config file ${file}: ${errorMessage(err)}`]);
  }
}

function parseYaml(text: string, label: string): Record<string, unknown> {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    // yaml's pretty message quotes the source line, which may hold a secret: keep only the reason.
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const reason = e.message.split(/ at line \d+, column \d+/)[0];
        return `${label}${pos ? `:${pos.line}:${pos.col}` : ''}: YAML syntax error: ${reason}`;
      }),
    );
  }
  const root: unknown = doc.toJS();
  if (!isMapping(root)) {
    const got =
      root === null || root === undefined ? 'an empty document' : Array.isArray(root) ? 'a list' : 'a scalar';
    throw new ConfigError([
      `${label}: the top level must be a mapping with postgres, tuzhan, batching, http, log and sources; got ${got}`,
    ]);
  }
  return root;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
