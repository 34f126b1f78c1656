/**
 * A row that is gone loses its groups on the platform only where no live row of the same source
 * still holds them for the same customer. A table emptied and reloaded in one transaction under new
 * keys (a TRUNCATE, then an INSERT of everything; a membership table keyed by a serial) leaves every
 * old key gone while the reload puts its pairs back: removing by key would take the reloaded
 * customers' groups away. So a re-sync's removal of gone keys, and an approval of held ones, first
 * read the source's live rows of those customers and remove only what none of them holds.
 *
 * A customer is matched on any one of its identity values (the platform may take any of them for
 * the same customer): when in doubt, a group stays.
 */
import type pg from 'pg';
import type { SourceConfig } from '../config/types.js';
import { IDENTITY_FIELDS } from '../config/types.js';
import type { Image } from '../domain/change.js';
import type { SourceMapper } from '../mapping/source-mapper.js';
import { readRowsByIdentity } from '../source/by-identity.js';

/** What `withoutLiveGroups` needs of a source: its config and how its rows map. */
export interface LiveSource {
  config: SourceConfig;
  mapper: Pick<SourceMapper, 'columns' | 'identityFields' | 'passes' | 'image'>;
}

/**
 * The images of gone rows with the groups some live row of the source still holds for the same
 * customer taken out, by key. Keys whose image keeps all its groups come back as they were.
 */
export async function withoutLiveGroups(
  db: Pick<pg.ClientBase, 'query'>,
  source: LiveSource,
  gone: ReadonlyArray<{ key: string; image: Image }>,
): Promise<Map<string, Image>> {
  const out = new Map<string, Image>();
  if (gone.length === 0) return out;
  const { config, mapper } = source;
  const matches = mapper.identityFields.map((f) => ({
    column: config.columns[f] as string,
    values: [...new Set(gone.map((g) => g.image.identity[f]).filter((v): v is string => v !== undefined))],
  }));
  const rows = await readRowsByIdentity(
    db,
    { schema: config.schema, name: config.tableName },
    mapper.columns,
    matches,
  );
  // Groups held now, per identity value.
  const held = new Map<string, Set<string>>();
  for (const row of rows) {
    if (mapper.passes(row) === false) continue;
    const image = mapper.image(row);
    if (image.error && !image.groupsError) continue;
    for (const f of IDENTITY_FIELDS) {
      const v = image.identity[f];
      if (v === undefined) continue;
      const set = held.get(`${f}\0${v}`) ?? new Set<string>();
      for (const g of image.groups ?? []) set.add(g);
      held.set(`${f}\0${v}`, set);
    }
  }
  for (const { key, image } of gone) {
    const kept = (g: string): boolean =>
      IDENTITY_FIELDS.some((f) => {
        const v = image.identity[f];
        return v !== undefined && held.get(`${f}\0${v}`)?.has(g) === true;
      });
    const groups = image.groups?.filter((g) => !kept(g)) ?? null;
    out.set(key, groups === null || groups.length === image.groups?.length ? image : { ...image, groups });
  }
  return out;
}
