/**
 * The calls one key's window sends, per source mode (./coalesce.ts chooses the window's states):
 * state set per (customer, group) pair, and only on pairs the row held. Pure functions.
 */
import { IDENTITY_FIELDS } from '../config/types.js';
import { sameIdentity, type Identity, type Image } from '../domain/change.js';
import type { OptType } from '../domain/types.js';

/** One API row to send: an operation on one customer and some of its groups (never none). */
export interface Part {
  op: OptType;
  identity: Identity;
  groups: string[];
}

/** Whether two images address the same customer with the same groups (so neither adds a call). */
export function sameTarget(a: Image, b: Image | null): boolean {
  return b !== null && sameIdentity(a.identity, b.identity) && sameGroups(a.groups ?? [], b.groups ?? []);
}

/** One text per customer identity. */
export function identityText(identity: Identity): string {
  return IDENTITY_FIELDS.map((f) => identity[f] ?? '').join('\u0000');
}

/** Marks "the pair did not change": a distinct empty list, so callers compare by identity. */
export const SKIP_UNCHANGED: Part[] = [];

/**
 * Row mode: a row is its customer's (customer, group) pairs, beside others on the same customer
 * that another source or a person put there. State is set per pair, as in membership mode: every
 * pair the row held in the window and holds no longer is deleted, and the row's groups are added.
 * A group the row never held is never touched (the platform's `update`, which replaces the whole
 * set, is not used), and a pair that was never sent (its state could not be mapped, or its groups
 * are unknown) is never deleted. A customer whose latest groups cannot be sent (a comma in a name)
 * is left alone: the row fails, and its customer keeps what it has.
 */
export function rowParts(prior: readonly Image[], a: Image | null): Part[] {
  const live = a && !a.error ? a : null;
  // Made on the first lost group: most windows (a new row, a snapshot's) lose none.
  let lost: Map<string, Part> | undefined;
  for (const p of prior) {
    if (p.error || p.groups === null) continue;
    if (a && !live && sameIdentity(p.identity, a.identity)) continue;
    const kept = live && sameIdentity(p.identity, live.identity) ? (live.groups ?? []) : [];
    for (const g of p.groups) {
      if (kept.includes(g)) continue;
      const k = identityText(p.identity);
      const part = (lost ??= new Map()).get(k);
      if (!part) lost.set(k, { op: 'delete', identity: p.identity, groups: [g] });
      else if (!part.groups.includes(g)) part.groups.push(g);
    }
  }
  const add: Part | undefined =
    live && (live.groups ?? []).length > 0
      ? { op: 'add', identity: live.identity, groups: live.groups ?? [] }
      : undefined;
  // An array literal is sized to fit; pushing onto [] would reserve room for 17.
  if (lost === undefined) return add ? [add] : [];
  const parts = [...lost.values()];
  if (add) parts.push(add);
  return parts;
}

/**
 * Membership mode: one row is one (customer, group) pair among others of the same customer, so
 * state is set per pair: every pair the row held other than its latest is deleted, the latest added.
 */
export function membershipParts(
  b: Image | null,
  prior: readonly Image[],
  a: Image | null,
  resend: boolean,
): Part[] {
  const live = a && !a.error ? a : null;
  // A pair whose group cannot be sent (or is unknown) was never sent either.
  const others = prior.filter(
    (p) => !p.error && p.groups !== null && p.groups.length > 0 && !(live && sameTarget(p, live)),
  );
  // Unchanged, unless the pair may have been deleted in between (the row was gone for a moment)
  // or the platform may have drifted (a re-sync).
  if (live && b && sameTarget(b, live) && others.length === 0 && !resend) return SKIP_UNCHANGED;
  const parts: Part[] = [];
  const deleted: Image[] = [];
  for (const p of others) {
    if (deleted.some((d) => sameTarget(d, p))) continue;
    deleted.push(p);
    parts.push({ op: 'delete', identity: p.identity, groups: p.groups ?? [] });
  }
  if (live && (live.groups ?? []).length > 0)
    parts.push({ op: 'add', identity: live.identity, groups: live.groups ?? [] });
  return parts;
}

function sameGroups(x: readonly string[], y: readonly string[]): boolean {
  if (x.length !== y.length) return false;
  const s = new Set(x);
  return y.every((g) => s.has(g));
}
