/**
 * What the one-shot commands (check, status, retry-failed, teardown) share: a database
 * connection that fails with one clear, secret-free line, and plain-text tables for terminals.
 */
import pg from 'pg';
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
      `cannot connect to postgres.url (${databaseLabel(config)}): ${redactText(errorMessage(err))}`,
      { cause: err },
    );
  }
  return client;
}

/** Left-aligned columns separated by two spaces; the header underlined with dashes. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** Writes JSON for `--json` (one document, pretty-printed, newline-terminated). */
export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
  );
}
