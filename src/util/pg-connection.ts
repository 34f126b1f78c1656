/**
 * How every connection to the CRM database is opened: `postgres.url` plus `postgres.ssl`. One place,
 * so the pool, the leader's lock, the replication stream and the commands all speak TLS alike.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { Config } from '../config/types.js';

type PostgresConfig = Pick<Config['postgres'], 'url' | 'ssl'>;

/**
 * TLS options of `postgres.ssl` (PEM files read once per call), or undefined when not set. An
 * `sslmode` in the URL takes precedence: node-postgres lets the connection string override `ssl`.
 */
export function sslOptions(ssl: PostgresConfig['ssl']): ConnectionOptions | undefined {
  if (!ssl) return undefined;
  const read = (key: 'ca' | 'cert' | 'key'): string | undefined => {
    const file = ssl[key];
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`postgres.ssl.${key}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const options: ConnectionOptions = { rejectUnauthorized: ssl.verify !== 'none' };
  const ca = read('ca');
  const cert = read('cert');
  const key = read('key');
  if (ca !== undefined) options.ca = ca;
  if (cert !== undefined) options.cert = cert;
  if (key !== undefined) options.key = key;
  // `ca`: the chain must be trusted, the host name may differ (a DBA's private CA, an IP address).
  if (ssl.verify === 'ca') options.checkServerIdentity = () => undefined;
  return options;
}

/** The client config of a connection to the CRM database. */
export function pgClientConfig(
  postgres: PostgresConfig,
  applicationName: string,
  extra: Omit<pg.ClientConfig, 'connectionString' | 'ssl' | 'application_name'> = {},
): pg.ClientConfig {
  const ssl = sslOptions(postgres.ssl);
  return {
    connectionString: postgres.url,
    application_name: applicationName,
    ...(ssl ? { ssl } : {}),
    ...extra,
  };
}
