/**
 * What a change of a source row is, as every stage from mapping on sees it: the customer's identity
 * and groups before and after (its images), keyed by the row's key. Mapping builds them from decoded
 * rows; batching, delivery and the platform client take them without knowing how they were made.
 */
import { IDENTITY_FIELDS, type IdentityField } from '../config/fields.js';

export type Identity = Partial<Record<IdentityField, string>>;

/**
 * A source row as the platform sees it. `groups` is null when the value is an unchanged TOAST
 * datum the server did not send: it must be resolved before anything is sent, never sent as empty.
 * `error` marks a row that cannot be mapped (no identity at all); it is recorded as failed.
 */
export interface Image {
  identity: Identity;
  groups: string[] | null;
  error?: string;
  /** The error is about the groups only: the identity is fine (and may hold groups on the platform). */
  groupsError?: boolean;
}

export interface RowKey {
  /** Canonical JSON of the key columns, in key order: the `row_key` of sync_status. */
  text: string;
  values: Record<string, unknown>;
}

/**
 * The platform's state for a key before a change: an image, null (nothing there), `lookup` (the old
 * row is not in the WAL; ask the bridge's own state, `deleteLookup: state`), or `unknown` (not in the
 * WAL and no state kept: the startup check normally prevents this).
 */
export type Before = Image | null | 'lookup' | 'unknown';

export interface SourceChange {
  kind: 'insert' | 'update' | 'delete';
  key: RowKey;
  before: Before;
  after: Image | null;
  /**
   * The platform may have drifted from `before` (a snapshot re-sync): send the row's state even
   * where it looks unchanged.
   */
  restate?: boolean;
  /** An operator approved this removal (tuzhan-cdc held --approve): the removal guard lets it pass. */
  approved?: boolean;
  /** Already judged a mass removal (a re-sync counts its removals first): held with this reason. */
  hold?: string;
}

/** Whether two images name the same platform customer (same identity fields and values). */
export function sameIdentity(a: Identity, b: Identity): boolean {
  for (const f of IDENTITY_FIELDS) if (a[f] !== b[f]) return false;
  return true;
}
