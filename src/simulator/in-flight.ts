/**
 * Which customers the simulator is answering requests about right now, to show the bridge's promise
 * that two requests for one customer are never in flight at once, whoever sends them. A request
 * counts from the moment its rows are read until its answer is written; every identity value of
 * its rows (`thirdId:c1`, `phone:138...`) is a customer it touches. A request touching a customer
 * another request is still being answered about is an overlap, and is remembered.
 */
import { IDENTITY_FIELDS } from '../config/types.js';
import type { ApiRow } from '../tuzhan/types.js';

export interface Overlaps {
  /** Requests that touched a customer another request in flight touched too. */
  count: number;
  /** The first few customers concerned. */
  customers: string[];
}

export class InFlight {
  private readonly open = new Map<string, number>();
  private overlaps: Overlaps = { count: 0, customers: [] };

  /** A request with these rows is being answered; returns the call that ends it. */
  enter(rows: readonly ApiRow[]): () => void {
    const touched = new Set<string>();
    for (const r of rows)
      for (const f of IDENTITY_FIELDS) {
        const v = r[f];
        if (v !== undefined) touched.add(`${f}:${v}`);
      }
    const busy = [...touched].filter((c) => (this.open.get(c) ?? 0) > 0);
    if (busy.length > 0) {
      this.overlaps.count += 1;
      for (const c of busy) if (this.overlaps.customers.length < 10) this.overlaps.customers.push(c);
    }
    for (const c of touched) this.open.set(c, (this.open.get(c) ?? 0) + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      for (const c of touched) {
        const n = (this.open.get(c) ?? 1) - 1;
        if (n === 0) this.open.delete(c);
        else this.open.set(c, n);
      }
    };
  }

  /** `enter` with the rows of a batchAdd body, as far as it has any (it is validated later). */
  enterBody(text: string): () => void {
    let data: unknown;
    try {
      data = (JSON.parse(text) as { data?: unknown }).data;
    } catch {
      data = undefined;
    }
    const rows = Array.isArray(data) ? data : [];
    return this.enter(rows.filter((r): r is ApiRow => r !== null && typeof r === 'object'));
  }

  /** The overlaps seen so far. */
  seen(): Overlaps {
    return { count: this.overlaps.count, customers: [...this.overlaps.customers] };
  }

  reset(): void {
    this.open.clear();
    this.overlaps = { count: 0, customers: [] };
  }
}
