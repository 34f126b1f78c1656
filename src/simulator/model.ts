/**
 * The simulated platform's data: a registry of platform customers (the audience matching finds)
 * and, per customer, a set of group names (docs/design.md, "The platform"). Pure; no I/O.
 *
 * Customer ids: a registry customer is `r<index>`, whatever identity found it, so groups set
 * through thirdId are visible through the phone of the same customer. Without matching, a
 * customer is the row's own identity `<field>:<value>` (or the registry customer that identity
 * names, so both views agree).
 */
import { readFile } from 'node:fs/promises';
import { IDENTITY_FIELDS, type IdentityField } from '../config/types.js';
import type { ApiRow, OptType, PublicParams } from '../tuzhan/types.js';

export type RegistryEntry = Partial<Record<IdentityField, string>>;

/** identifyWay -> the order identities are tried in (vendor page). */
export const IDENTIFY_ORDER: Record<1 | 2, readonly IdentityField[]> = {
  1: ['unionid', 'openid', 'phone', 'thirdId'],
  2: ['thirdId', 'phone', 'openid', 'unionid'],
};
/** Which identity keys a customer when the request does not ask for matching. */
const OWN_IDENTITY_ORDER: readonly IdentityField[] = ['thirdId', 'phone', 'openid', 'unionid'];

export type RowResult = { ok: true; customer: string } | { ok: false; error: string };

export function parseGroups(groups: string | undefined): string[] {
  if (groups === undefined) return [];
  return groups
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
}

export class PlatformModel {
  private readonly index = new Map<string, string>();
  private readonly groups = new Map<string, Set<string>>();

  constructor(registry: readonly RegistryEntry[] = []) {
    registry.forEach((entry, i) => {
      for (const f of IDENTITY_FIELDS) {
        const v = entry[f];
        // The first customer naming an identity owns it; a duplicate in the registry is ignored.
        if (typeof v === 'string' && v !== '' && !this.index.has(`${f}:${v}`))
          this.index.set(`${f}:${v}`, `r${i}`);
      }
    });
  }

  /** The registry customer an identity names, if any. */
  lookup(field: IdentityField, value: string): string | undefined {
    return this.index.get(`${field}:${value}`);
  }

  /** Which customer a row addresses under these params, or why it fails (a per-row failure). */
  resolve(params: PublicParams, row: ApiRow): RowResult {
    const present = IDENTITY_FIELDS.filter((f) => row[f] !== undefined);
    if (!params.isMatching) {
      const field =
        row.identityType && row[row.identityType] !== undefined
          ? row.identityType
          : OWN_IDENTITY_ORDER.find((f) => row[f] !== undefined);
      if (field === undefined) return { ok: false, error: 'row has no identity' };
      const value = row[field] as string;
      return { ok: true, customer: this.lookup(field, value) ?? `${field}:${value}` };
    }
    if (params.matchingType === 1) {
      const t = row.identityType;
      if (t === undefined) return { ok: false, error: 'identityType is required for exact matching' };
      const value = row[t];
      if (value === undefined) return { ok: false, error: `identityType is ${t} but the row has no ${t}` };
      const customer = this.lookup(t, value);
      return customer === undefined
        ? { ok: false, error: `no customer matches ${t}` }
        : { ok: true, customer };
    }
    if (present.length === 0) return { ok: false, error: 'row has no identity' };
    // Fuzzy: the first identity (in identifyWay order) present in the row that finds a customer.
    for (const f of IDENTIFY_ORDER[params.identifyWay ?? 1]) {
      const value = row[f];
      if (value === undefined) continue;
      const customer = this.lookup(f, value);
      if (customer !== undefined) return { ok: true, customer };
    }
    return { ok: false, error: 'no customer matches the row' };
  }

  /** Applies one row's groups to a customer: add = union, update = replace, delete = remove (all if none). */
  apply(customer: string, optType: OptType, groups: string | undefined): void {
    const names = parseGroups(groups);
    const current = this.groups.get(customer);
    if (optType === 'add') {
      const set = current ?? new Set<string>();
      for (const g of names) set.add(g);
      this.groups.set(customer, set);
    } else if (optType === 'update') {
      this.groups.set(customer, new Set(names));
    } else if (current !== undefined) {
      if (names.length === 0) current.clear();
      else for (const g of names) current.delete(g);
    }
  }

  /** Sorted groups of the customer an identity resolves to; undefined when it has no state. */
  groupsOf(field: IdentityField, value: string): string[] | undefined {
    const set = this.groups.get(this.lookup(field, value) ?? `${field}:${value}`);
    return set === undefined ? undefined : [...set].sort();
  }

  /** Forgets every customer's groups (the registry stays). */
  clear(): void {
    this.groups.clear();
  }

  get customersWithState(): number {
    return this.groups.size;
  }
}

/** Reads a registry file: a JSON array of `{thirdId?, phone?, openid?, unionid?}` objects. */
export async function loadRegistry(file: string): Promise<RegistryEntry[]> {
  const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (!Array.isArray(parsed)) throw new Error(`${file}: expected a JSON array of customers`);
  return parsed.map((entry: unknown, i) => {
    if (entry === null || typeof entry !== 'object') throw new Error(`${file}: entry ${i} is not an object`);
    const out: RegistryEntry = {};
    for (const f of IDENTITY_FIELDS) {
      const v = (entry as Record<string, unknown>)[f];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string' && typeof v !== 'number')
        throw new Error(`${file}: entry ${i}.${f} is not a string`);
      out[f] = String(v);
    }
    return out;
  });
}
