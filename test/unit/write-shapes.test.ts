import { describe, expect, it } from 'vitest';
import { statusWriteSql } from '../../src/status/status-write.js';
import { STREAK, WriteShapes, isKeyTaken } from '../../src/status/write-shapes.js';

describe('the status write for new keys', () => {
  it('is the upsert without its ON CONFLICT clause, with and without the batch row', () => {
    for (const withBatch of [true, false]) {
      const upsert = statusWriteSql('s', withBatch, 'insert');
      const plain = statusWriteSql('s', withBatch, 'new');
      expect(upsert).toContain('ON CONFLICT');
      expect(plain).not.toMatch(/ON CONFLICT|DO UPDATE|EXCLUDED/);
      // What is left is the upsert's text up to the clause and from RETURNING on.
      const at = upsert.indexOf('ON CONFLICT');
      expect(plain.startsWith(upsert.slice(0, at).trimEnd())).toBe(true);
      expect(plain.endsWith(upsert.slice(upsert.indexOf('RETURNING')))).toBe(true);
      expect(plain.includes('sync_batch')).toBe(withBatch);
    }
  });
});

describe('WriteShapes', () => {
  it('starts with the upsert and takes the plain INSERT after a run of writes of new keys only', () => {
    const shapes = new WriteShapes();
    const seen: string[] = [];
    for (let i = 0; i < STREAK + 2; i++) {
      seen.push(shapes.choose('a'));
      shapes.wrote('a', 500, 500);
    }
    expect(seen).toEqual([...new Array<string>(STREAK).fill('insert'), 'new', 'new']);
    expect(shapes.choose('b')).toBe('insert'); // per source
  });

  it('after a collision, needs a new run before the next try, and a mixed write breaks the run', () => {
    const shapes = new WriteShapes();
    for (let i = 0; i < STREAK; i++) shapes.wrote('a', 500, 500);
    expect(shapes.choose('a')).toBe('new');
    shapes.collided('a');
    shapes.wrote('a', 500, 499); // the upsert that wrote it instead: one key was known
    const next: string[] = [];
    for (let i = 0; i < STREAK + 1; i++) {
      next.push(shapes.choose('a'));
      shapes.wrote('a', 500, i === 1 ? 499 : 500);
    }
    // The run restarts after the second write (499 of 500 new): STREAK more upserts first.
    expect(next).toEqual(['insert', ...new Array<string>(STREAK).fill('insert')]);
    expect(shapes.choose('a')).toBe('insert');
    shapes.wrote('a', 500, 500);
    expect(shapes.choose('a')).toBe('new');
  });

  it('turns to the update shape once fewer than half of the rows written are new, as before', () => {
    const shapes = new WriteShapes();
    // share: 1 -> 0.5 -> 0.25 (halved toward 0 per write of known keys only)
    shapes.wrote('a', 500, 0);
    expect(shapes.choose('a')).toBe('insert');
    shapes.wrote('a', 500, 0);
    expect(shapes.choose('a')).toBe('update');
    shapes.wrote('a', 0, 0); // nothing written: nothing learnt
    expect(shapes.choose('a')).toBe('update');
  });

  it('recognises only the primary key violation of sync_row', () => {
    expect(isKeyTaken({ code: '23505', constraint: 'sync_row_pkey' })).toBe(true);
    expect(isKeyTaken({ code: '23505', constraint: 'sync_batch_pkey' })).toBe(false);
    expect(isKeyTaken({ code: '21000', constraint: 'sync_row_pkey' })).toBe(false);
    expect(isKeyTaken(new Error('x'))).toBe(false);
    expect(isKeyTaken(null)).toBe(false);
  });
});
