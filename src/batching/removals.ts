/**
 * The removal guard's vocabulary (./guard.ts): what removes, whom an entry touches, which
 * transaction and window its removals belong to, and how a held row says why. Pure functions.
 */
import { IDENTITY_FIELDS } from '../config/types.js';
import type { Holder } from '../domain/types.js';
import { formatLsn } from '../util/lsn.js';
import type { Entry, NetEffect } from './coalesce.js';

/** An entry with its planned calls, and the guard's verdict about it. */
export interface Item {
  entry: Entry;
  effect: NetEffect;
  verdict: 'send' | 'wait' | { hold: string | null };
  /** The flush it came in: waiting entries are sent as the flushes they came in. */
  flush: number;
}

/** Whether an entry's calls remove groups from the platform. */
export function removes(effect: NetEffect): boolean {
  return effect.kind === 'send' && effect.parts.some((p) => p.op === 'delete');
}

export interface Limit {
  n: number;
  rows: number;
  words: string;
}

export interface Window {
  first: bigint;
  last: bigint;
  txs: number;
  at: Date | undefined;
}

export function isOpen(e: Entry): boolean {
  return e.holder?.committed === false;
}

export function byTransaction(items: readonly Item[]): Map<Holder | undefined, Item[]> {
  const out = new Map<Holder | undefined, Item[]>();
  for (const i of items) {
    const list = out.get(i.entry.holder) ?? [];
    list.push(i);
    out.set(i.entry.holder, list);
  }
  return out;
}

export function windowOf(items: readonly Item[]): Window {
  let first: bigint | undefined;
  let last = 0n;
  let at: Date | undefined;
  const txs = new Set<bigint>();
  for (const { entry: e } of items) {
    txs.add(e.lsn);
    if (first === undefined || e.lsn < first) first = e.lsn;
    if (e.lsn >= last) [last, at] = [e.lsn, e.commitTime];
  }
  return { first: first ?? 0n, last, txs: txs.size, at };
}

/** " in one transaction (commit 0/1A2B3C4 at 2024-05-01T10:00:00Z)", or the window's range. */
export function windowWords(w: Window): string {
  const at = w.at ? ` at ${w.at.toISOString()}` : '';
  if (w.txs <= 1) return ` in one transaction (commit ${formatLsn(w.last)}${at})`;
  return ` in one flush window of ${w.txs} transactions (commits ${formatLsn(w.first)} to ${formatLsn(w.last)}${at})`;
}

/** Records an item's key and the customers its calls address. */
export function mark(i: Item, keys: Set<string>, ids: Set<string>): void {
  keys.add(i.entry.key.text);
  if (i.effect.kind !== 'send') return;
  for (const p of i.effect.parts)
    for (const f of IDENTITY_FIELDS) {
      const v = p.identity[f];
      if (v !== undefined) ids.add(`${f}:${v}`);
    }
}

export function touches(i: Item, keys: Set<string>, ids: Set<string>): boolean {
  if (keys.size === 0) return false;
  if (keys.has(i.entry.key.text)) return true;
  if (i.effect.kind !== 'send') return false;
  for (const p of i.effect.parts)
    for (const f of IDENTITY_FIELDS) {
      const v = p.identity[f];
      if (v !== undefined && ids.has(`${f}:${v}`)) return true;
    }
  return false;
}

/**
 * The reason a held row gives: how many of how many rows, which transaction, the limit. `more`: a
 * transaction judged before its COMMIT, whose later rows are held with it (its count is a floor).
 */
export function heldReason(source: string, n: number, limit: Limit, window: Window, more = false): string {
  return `${more ? 'at least ' : ''}${n} of the ${limit.rows} rows of source ${source} would lose groups${windowWords(window)}, more than guard.maxRemovals (${limit.words}); approve or reject: tuzhan-cdc held --source ${source}`;
}
