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

/**
 * A client checked out of a pg.Pool has no 'error' listener (the pool listens only while the client
 * idles in it), so a server shutdown between two queries arrives as an unhandled 'error' event and
 * crashes the process. With this listener the failure reaches the caller as the next query's
 * rejection instead. Returns the function that removes the listener: call it before `release()`.
 */
export function guardCheckedOut(client: pg.PoolClient): () => void {
  const ignore = (): void => {};
  client.on('error', ignore);
  return () => client.off('error', ignore);
}
