/**
 * What a source row means to the platform: its key, whether it passes the source's `where` filter,
 * and its image (identity + groups). Pure functions over decoded rows; the same code serves the
 * snapshot and the stream, so both translate a row identically.
 */
import type { FilterValue, IdentityField, SourceConfig } from '../config/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';
import type { Row } from '../decode/pgoutput.js';
import type { Identity, Image, RowKey } from '../domain/change.js';
import { oldImageColumns } from './columns.js';

export type { Identity, Image, RowKey } from '../domain/change.js';

/**
 * JSON text of a key object with its members in jsonb's order (byte length, then bytes) and no
 * spaces: `sync_row.key`, equal to what `sync_key(jsonb)` gives in SQL (sql/007), so a key the
 * bridge builds and one an operator or the migration builds from jsonb find each other. Written
 * member by member: a JavaScript object would put integer-like names ("0", "10") first.
 */
export function canonicalJson(values: Record<string, unknown>): string {
  const keys = Object.keys(values);
  if (keys.length === 1) return JSON.stringify(values);
  keys.sort((a, b) => {
    const la = Buffer.byteLength(a);
    const lb = Buffer.byteLength(b);
    return la !== lb ? la - lb : Buffer.compare(Buffer.from(a), Buffer.from(b));
  });
  let text = '';
  for (const k of keys) {
    const v = values[k];
    if (v === undefined) continue; // as JSON.stringify does
    text += `${text ? ',' : '{'}${JSON.stringify(k)}:${JSON.stringify(v)}`;
  }
  return text ? `${text}}` : '{}';
}

/** Splits a `groups` value: text "a,b" or a text[] array. Empty names are dropped, order kept. */
export function parseGroups(value: unknown): string[] | null {
  if (value === undefined) return null;
  if (value === null) return [];
  // Runs for every row: a few names, usually distinct, so a linear check beats a Set.
  const parts = Array.isArray(value)
    ? value.map((v) => (v === null ? '' : String(v)))
    : String(value).split(',');
  if (isClean(parts)) return parts;
  const out: string[] = [];
  let seen: Set<string> | undefined;
  for (const p of parts) {
    const g = p.trim();
    if (g === '') continue;
    if (seen === undefined) {
      if (out.includes(g)) continue;
      if (out.length === 16) seen = new Set(out);
    }
    if (seen !== undefined) {
      if (seen.has(g)) continue;
      seen.add(g);
    }
    out.push(g);
  }
  return out;
}

/**
 * Whether split names are already the list (the usual "a,b": each trimmed, none empty, no repeat),
 * so it serves as it is instead of being copied name by name. Longer lists take the general path.
 */
function isClean(parts: readonly string[]): boolean {
  if (parts.length > 16) return false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (p === '' || p.trim() !== p) return false;
    for (let j = 0; j < i; j++) if (parts[j] === p) return false;
  }
  return true;
}

/** An identity value as the API wants it: a non-empty string, or absent. */
export function identityValue(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const s = (value instanceof Date ? value.toISOString() : String(value)).trim();
  return s === '' ? undefined : s;
}

function filterMatches(actual: unknown, expected: FilterValue | readonly FilterValue[]): boolean {
  const list = Array.isArray(expected) ? expected : [expected];
  return list.some((e) => (e === null ? actual === null : actual !== null && String(actual) === String(e)));
}

export class SourceMapper {
  /** Identity fields mapped by this source, in the order thirdId, openid, unionid, phone. */
  readonly identityFields: readonly IdentityField[];
  /** Every column the source reads (key, identities, groups, filter). */
  readonly columns: readonly string[];
  /** Columns an old row must carry to say what the platform held (see `oldImageColumns`). */
  private readonly beforeColumns: readonly string[];

  constructor(
    readonly source: SourceConfig,
    readonly keyColumns: readonly string[],
  ) {
    this.identityFields = IDENTITY_FIELDS.filter((f) => source.columns[f] !== undefined);
    this.columns = [
      ...new Set([
        ...keyColumns,
        ...this.identityFields.map((f) => source.columns[f] as string),
        source.columns.groups,
        ...Object.keys(source.where ?? {}),
      ]),
    ];
    this.beforeColumns = [...new Set([...keyColumns, ...oldImageColumns(source)])];
    const only = keyColumns.length === 1 ? keyColumns[0] : undefined;
    this.singleKey = only;
  }

  /** The key column, when the key is one column. */
  private readonly singleKey: string | undefined;

  /** The row's key, or null when a key column is missing from the tuple. */
  keyOf(row: Row): RowKey | null {
    if (this.singleKey !== undefined) {
      // One key column (the usual case): the canonical text without sorting, written in one piece
      // (a text pieced together is a rope, copied flat again when the buffers first look it up).
      const v = row[this.singleKey];
      if (v === undefined) return null;
      const values = { [this.singleKey]: v };
      return { text: JSON.stringify(values), values };
    }
    const values: Record<string, unknown> = {};
    for (const c of this.keyColumns) {
      const v = row[c];
      if (v === undefined) return null;
      values[c] = v;
    }
    return { text: canonicalJson(values), values };
  }

  /**
   * Whether the row passes the `where` filter: true, false, or undefined when a filter column is
   * not in the tuple (a key-only old tuple).
   */
  passes(row: Row): boolean | undefined {
    const where = this.source.where;
    if (!where) return true;
    for (const [col, expected] of Object.entries(where)) {
      if (!(col in row) || row[col] === undefined) return undefined;
      if (!filterMatches(row[col], expected)) return false;
    }
    return true;
  }

  /** Whether the tuple holds every column needed for an image (a full tuple, not key-only). */
  isComplete(row: Row): boolean {
    return this.columns.every((c) => c in row);
  }

  /** Whether an old tuple says what the platform held: see `oldImageColumns`. */
  describesBefore(row: Row): boolean {
    return this.beforeColumns.every((c) => c in row);
  }

  /** The platform's view of a full row. */
  image(row: Row): Image {
    const identity: Identity = {};
    let identities = 0;
    for (const f of this.identityFields) {
      const v = identityValue(row[this.source.columns[f] as string]);
      if (v !== undefined) {
        identity[f] = v;
        identities += 1;
      }
    }
    const raw = row[this.source.columns.groups];
    const groups =
      this.source.mode === 'membership'
        ? raw === undefined
          ? null
          : raw === null || String(raw).trim() === ''
            ? []
            : [String(raw).trim()]
        : parseGroups(raw);
    const image: Image = { identity, groups };
    const identityType = this.source.match.identityType;
    if (identities === 0) {
      image.error = `no identity value: all of ${this.identityFields
        .map((f) => `${f} (${this.source.columns[f]})`)
        .join(', ')} are empty`;
    } else if (identityType && identity[identityType] === undefined) {
      image.error = `exact matching by ${identityType}, but ${identityType} (${this.source.columns[identityType]}) is empty`;
    } else if (this.source.mode === 'membership' && groups !== null && groups.length === 0) {
      image.error = `membership row without a group (${this.source.columns.groups} is empty)`;
    } else {
      const bad = groups?.find((g) => g.includes(','));
      if (bad !== undefined) {
        // The platform splits `groups` at every comma: sending it would create other groups.
        image.error = `group name ${JSON.stringify(bad)} contains a comma, which the platform's groups field cannot carry (it would become ${bad.split(',').length} groups); rename the group`;
        image.groupsError = true;
      }
    }
    return image;
  }
}
