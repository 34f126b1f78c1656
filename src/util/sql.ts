import pg from 'pg';

/** Quotes an SQL identifier (schema, table, column): the one helper every query uses for names. */
export function quoteIdent(name: string): string {
  return pg.escapeIdentifier(name);
}

/** Quotes a schema-qualified table name given as its two parts. */
export function quoteTable(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/**
 * Names the replication library interpolates raw into its commands (slot, publication) must be
 * plain: lower-case letters, digits and underscores, starting with a letter or underscore, at most
 * 63 bytes. This is also what PostgreSQL itself allows for slot names.
 */
export const PLAIN_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
