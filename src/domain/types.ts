/**
 * Words every stage shares: what the platform is asked to do, what became of a source row, a
 * source as the pipeline runs it, and what waits for an outcome. Types only, no behaviour.
 */
import type { SourceConfig } from '../config/types.js';
import type { SourceMapper } from '../mapping/source-mapper.js';

/** The platform's operations (publicParams.optType). */
export type OptType = 'add' | 'update' | 'delete';

/** A source row's latest outcome, as sync_status records it. */
export type RowStatus = 'synced' | 'failed' | 'retrying' | 'accepted' | 'skipped';

/** Something that waits for an outcome to be stored: a transaction of the position tracker. */
export interface Holder {
  hold(n: number): void;
  release(n: number): void;
}

/** A source as the pipeline runs it. */
export interface SourceRuntime {
  config: SourceConfig;
  mapper: SourceMapper;
  /** SQL types of the key columns, in key order (`format_type`), to compare stored keys with rows. */
  keyTypes: readonly string[];
  /** Reads the current values of a row by key (for unchanged TOAST values), or null if gone. */
  readRow(keyValues: Record<string, unknown>): Promise<Record<string, unknown> | null>;
}
