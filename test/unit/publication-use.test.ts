import { describe, expect, it } from 'vitest';
import { publicationNames, reasonToKeep } from '../../src/source/publication-use.js';

describe('publicationNames', () => {
  it("reads the names a walsender's START_REPLICATION command streams", () => {
    // As pg-logical-replication sends it, and as PostgreSQL's own subscriber does (quoted names).
    expect(
      publicationNames(
        `START_REPLICATION SLOT "s" LOGICAL 0/0 (proto_version '1', publication_names 'tuzhan_cdc', messages 'true')`,
      ),
    ).toEqual(['tuzhan_cdc']);
    expect(
      publicationNames(
        `START_REPLICATION SLOT "sub" LOGICAL 0/0 (proto_version '4', origin 'any', publication_names '"pub_a","Pub ""B"""')`,
      ),
    ).toEqual(['pub_a', 'Pub "B"']);
    expect(publicationNames('<insufficient privilege>')).toBeUndefined();
    expect(publicationNames(null)).toBeUndefined();
  });
});

describe('reasonToKeep', () => {
  it('drops only what the bridge made and nobody else reads', () => {
    expect(reasonToKeep({ exists: true, createdByBridge: true, readers: [] })).toBeUndefined();
    expect(reasonToKeep({ exists: true, createdByBridge: false, readers: [] })).toMatch(
      /^the bridge did not create it/,
    );
    expect(
      reasonToKeep({
        exists: true,
        createdByBridge: true,
        readers: [
          { slot: 'a', active: true, pid: 7, known: true },
          { slot: 'b', active: false, pid: null, known: false },
        ],
      }),
    ).toBe(
      'slot a (pid 7) streams from it; slot b (inactive) may read it (PostgreSQL does not record which publication a slot reads)',
    );
  });
});
