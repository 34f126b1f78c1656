/**
 * What the one-shot commands (check, status, retry-failed, teardown) share: a database
 * connection that fails with one clear, secret-free line, and plain-text tables for terminals.
 */
import pg from 'pg';
import { keyWithOrigin } from '../config/origins.js';
import type { Config } from '../config/types.js';
import { BridgeError, errorMessage } from '../errors.js';
import { redactText, redactUrl } from '../ops/redact.js';
import { pgClientConfig } from '../util/pg-connection.js';

/** `postgres.url` without its password, for output. */
export function databaseLabel(config: Config): string {
  return redactUrl(config.postgres.url);
}

/**
 * Connects to the CRM database with a bounded connect time. Throws a BridgeError `DB_UNREACHABLE`
 * (exit 1) naming the redacted URL and PostgreSQL's reason.
 */
export async function connectDatabase(config: Config, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client(
    pgClientConfig(config.postgres, applicationName, { connectionTimeoutMillis: 10_000 }),
  );
  // An error on an idle client (server restart) must not crash a short command.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new BridgeError(
      'DB_UNREACHABLE',
      `cannot connect to ${keyWithOrigin(config, 'postgres.url')}, ${databaseLabel(config)}: ${redactText(errorMessage(err))}`,
      { cause: err },
    );
  }
  return client;
}

/** Writes JSON for `--json` (one document, pretty-printed, newline-terminated). */
export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
  );
}
