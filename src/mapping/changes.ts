/**
 * Decoded row messages -> per-key source changes: the key, the platform's view of the row before
 * the change (`before`) and after it (`after`). A `where` filter is applied here: a row outside the
 * filter is "absent" (null), so a row leaving the filter becomes a delete and one entering it an add.
 */
import type { ChangeMessage, Row } from '../decode/pgoutput.js';
import type { Before, Image, SourceChange } from '../domain/change.js';
import type { SourceMapper } from './source-mapper.js';

export type { Before, SourceChange } from '../domain/change.js';

export type RowMessage = Extract<ChangeMessage, { tag: 'insert' | 'update' | 'delete' }>;

function beforeOf(mapper: SourceMapper, old: Row | null): Before {
  if (old && mapper.describesBefore(old)) {
    if (mapper.passes(old) === false) return null;
    const image = mapper.image(old);
    // Row mode: an old row that could not be sent (a comma in a group name) left its customer with
    // the last state the bridge sent, which the stored payload says and the WAL does not.
    return image.error && mapper.source.mode === 'row' ? 'lookup' : image;
  }
  // Row mode removes only the groups a row held; when the WAL does not say which (no REPLICA
  // IDENTITY FULL), what the bridge last recorded as sent for the key does (docs/design.md).
  return mapper.source.deleteLookup === 'state' || mapper.source.mode === 'row' ? 'lookup' : 'unknown';
}

function afterOf(mapper: SourceMapper, row: Row): Image | null {
  return mapper.passes(row) === false ? null : mapper.image(row);
}

/**
 * Translates one row message of a source table. An UPDATE that changes the key is a delete of the
 * old key and an insert of the new one. Returns `{ error }` when the key cannot be read (which the startup
 * check of the replica identity rules out); the caller reports that.
 */
export function toSourceChanges(mapper: SourceMapper, msg: RowMessage): SourceChange[] | { error: string } {
  const changes = translate(mapper, msg);
  if ('error' in changes) return changes;
  // A row outside the `where` filter before and after the change means nothing to the platform:
  // no outcome is recorded for it (sync_status lists the rows the source syncs).
  return changes.every(matters) ? changes : changes.filter(matters);
}

function matters(c: SourceChange): boolean {
  return c.before !== null || c.after !== null;
}

function translate(mapper: SourceMapper, msg: RowMessage): SourceChange[] | { error: string } {
  switch (msg.tag) {
    case 'insert': {
      const key = mapper.keyOf(msg.new);
      if (!key) return { error: 'inserted row lacks a key column' };
      return [{ kind: 'insert', key, before: null, after: afterOf(mapper, msg.new) }];
    }
    case 'update': {
      const key = mapper.keyOf(msg.new);
      if (!key) return { error: 'updated row lacks a key column' };
      const oldKeyRow = msg.old ?? msg.key;
      const oldKey = oldKeyRow ? mapper.keyOf(oldKeyRow) : key;
      const after = afterOf(mapper, msg.new);
      if (oldKey && oldKey.text !== key.text) {
        return [
          { kind: 'delete', key: oldKey, before: beforeOf(mapper, msg.old ?? msg.key), after: null },
          { kind: 'insert', key, before: null, after },
        ];
      }
      return [{ kind: 'update', key, before: beforeOf(mapper, msg.old ?? msg.key), after }];
    }
    case 'delete': {
      const row = msg.old ?? msg.key;
      const key = row ? mapper.keyOf(row) : null;
      if (!key) return { error: 'deleted row carries no key (REPLICA IDENTITY NOTHING?)' };
      return [{ kind: 'delete', key, before: beforeOf(mapper, msg.old ?? msg.key), after: null }];
    }
  }
}
