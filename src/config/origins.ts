/**
 * Where each config value came from: written in the file, substituted from `${VAR}`, or set by an
 * override variable (each possibly read from a `<VAR>_FILE` secret). A message about a key an
 * operator must fix (credentials the platform refuses, a database that refuses the connection)
 * names the key and where its value came from, never the value: `tuzhan.token (from TUZHAN_TOKEN)`.
 *
 * The frozen Config keeps its type; origins are kept beside it, keyed by the config object and by
 * each of its sections, so code that holds only `config.tuzhan` can still name the origin.
 */
export type Origin =
  /** Written in the config file. */
  | { kind: 'file'; file: string }
  /** `${VAR}` references in the file's value; `variables` as read (`TUZHAN_TOKEN_FILE` for a secret file). */
  | { kind: 'substitution'; file: string; references: Array<{ name: string; from: string }> }
  /** An override variable (`TUZHAN_TOKEN`, or `TUZHAN_TOKEN_FILE` naming a file that holds it). */
  | { kind: 'override'; variable: string };

/** Origins by dotted key path (`tuzhan.token`, `sources.0.columns.phone`). */
export type Origins = ReadonlyMap<string, Origin>;

const registry = new WeakMap<object, Origins>();

/** Remembers the origins of `config` for it and each object inside it (sections, sources). */
export function recordOrigins(config: object, origins: Origins): void {
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null || registry.has(node)) return;
    registry.set(node, origins);
    for (const v of Object.values(node)) visit(v);
  };
  visit(config);
}

/** The origin of the key at `path` of the config `node` belongs to; undefined when not known. */
export function originOf(node: object, path: string): Origin | undefined {
  return registry.get(node)?.get(path);
}

/** "from TUZHAN_TOKEN", "from ${TUZHAN_TOKEN} in bridge.yaml", "in bridge.yaml". */
export function describeOrigin(origin: Origin): string {
  switch (origin.kind) {
    case 'override':
      return `from ${origin.variable}`;
    case 'file':
      return `in ${origin.file}`;
    case 'substitution':
      return `from ${origin.references
        .map((r) => `\${${r.name}}${r.from === r.name ? '' : ` (read from ${r.from})`}`)
        .join(', ')} in ${origin.file}`;
  }
}

/**
 * The key at `path` with where its value came from, for messages: `tuzhan.token (from
 * TUZHAN_TOKEN)`. Just the path when the config was not loaded from a file or the environment
 * (built in code, as tests do).
 */
export function keyWithOrigin(node: object, path: string): string {
  const origin = originOf(node, path);
  return origin ? `${path} (${describeOrigin(origin)})` : path;
}
