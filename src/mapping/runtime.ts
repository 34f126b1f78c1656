/** A source as the pipeline runs it: its config, its mapper, and how to read its current rows. */
import type { SourceConfig } from '../config/types.js';
import type { SourceMapper } from './source-mapper.js';

export interface SourceRuntime {
  config: SourceConfig;
  mapper: SourceMapper;
  /** SQL types of the key columns, in key order (`format_type`), to compare stored keys with rows. */
  keyTypes: readonly string[];
  /** Reads the current values of a row by key (for unchanged TOAST values), or null if gone. */
  readRow(keyValues: Record<string, unknown>): Promise<Record<string, unknown> | null>;
}
