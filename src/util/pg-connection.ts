/**
 * How every connection to the CRM database is opened: `postgres.url` plus `postgres.ssl`. One place,
 * so the pool, the leader's lock, the replication stream and the commands all speak TLS alike.
 *
 * TLS parameters in the URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) mean what they mean to
 * libpq and psql, so a URL that works with psql works here. They are taken out of the URL before
 * node-postgres sees it: its own parser gives `sslmode=require` a different meaning (today an alias
 * of verify-full, libpq's meaning in its next major version) and prints a nine-line warning about
 * that on every command.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
/**
 * What a connection is opened from: `postgres.url` and `postgres.ssl` (config/schema.ts describes
 * them). Written out here, so the config's schema can take SSL_MODES from this module without an
 * import cycle; the config's `postgres` section is one.
 */
export interface PostgresConfig {
  url: string;
  ssl?: { ca?: string; cert?: string; key?: string; verify: 'full' | 'ca' | 'none' };
}

/** libpq's sslmode values (PostgreSQL docs, "SSL Support", table "SSL Mode Descriptions"). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The URL parameters read here, never passed on to node-postgres. */
const URL_TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'] as const;

/** The URL's TLS parameters, and the URL without them. */
export function splitTlsParams(url: string): {
  url: string;
  params: Partial<Record<(typeof URL_TLS_PARAMS)[number], string>>;
} {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url, params: {} }; // validation reports a bad URL; nothing to split
  }
  const params: Partial<Record<(typeof URL_TLS_PARAMS)[number], string>> = {};
  for (const p of URL_TLS_PARAMS) {
    const v = u.searchParams.get(p);
    if (v !== null) params[p] = v;
    u.searchParams.delete(p);
  }
  return Object.keys(params).length ? { url: u.toString(), params } : { url, params };
}

function readPem(what: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${what}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/**
 * TLS options for node-postgres, or `false` (no TLS), or undefined (nothing asked for). The URL's
 * parameters win over `postgres.ssl`, key by key. Modes, as libpq has them:
 * - `disable`, `allow` (libpq tries without TLS first, which succeeds wherever `allow` is used): no TLS;
 * - `prefer`, `require`: encrypted, the certificate not checked; with a root certificate (`sslrootcert`
 *   or `postgres.ssl.ca`) `require` checks the chain as `verify-ca` does (libpq does the same).
 *   node-postgres cannot fall back to plain text, so `prefer` fails where the server has no TLS;
 * - `verify-ca`: the chain must lead to the root certificate, any host name;
 * - `verify-full`: the chain and the host name (`sslrootcert=system`: the system's CAs).
 * `postgres.ssl.verify` says the same as `verify-full` (full), `verify-ca` (ca) and `require` (none).
 */
export function tlsOptions(postgres: PostgresConfig): ConnectionOptions | false | undefined {
  const { params } = splitTlsParams(postgres.url);
  const ssl = postgres.ssl;
  if (!ssl && Object.keys(params).length === 0) return undefined;
  const fromConfig: SslMode | undefined =
    ssl === undefined
      ? undefined
      : ssl.verify === 'full'
        ? 'verify-full'
        : ssl.verify === 'ca'
          ? 'verify-ca'
          : 'require';
  // libpq's default is prefer; a URL with only sslrootcert/sslcert still means TLS here.
  const mode = (params.sslmode as SslMode | undefined) ?? fromConfig ?? 'prefer';
  if (mode === 'disable' || mode === 'allow') return false;

  const pick = (url: string | undefined, urlName: string, file: string | undefined, key: string) =>
    url !== undefined ? { what: urlName, file: url } : file !== undefined ? { what: key, file } : undefined;
  const root = pick(params.sslrootcert, 'sslrootcert', ssl?.ca, 'postgres.ssl.ca');
  const cert = pick(params.sslcert, 'sslcert', ssl?.cert, 'postgres.ssl.cert');
  const key = pick(params.sslkey, 'sslkey', ssl?.key, 'postgres.ssl.key');
  const options: ConnectionOptions = {};
  // `sslrootcert=system` (libpq 16): the system's trusted CAs, Node's default.
  if (root && root.file !== 'system') options.ca = readPem(root.what, root.file);
  if (cert) options.cert = readPem(cert.what, cert.file);
  if (key) options.key = readPem(key.what, key.file);

  const verify =
    mode === 'verify-full'
      ? 'full'
      : mode === 'verify-ca' || (mode === 'require' && root !== undefined)
        ? 'ca'
        : 'none';
  options.rejectUnauthorized = verify !== 'none';
  // `ca`: the chain must be trusted, the host name may differ (a DBA's private CA, an IP address).
  if (verify === 'ca') options.checkServerIdentity = () => undefined;
  return options;
}

/** The client config of a connection to the CRM database. */
export function pgClientConfig(
  postgres: PostgresConfig,
  applicationName: string,
  extra: Omit<pg.ClientConfig, 'connectionString' | 'ssl' | 'application_name'> = {},
): pg.ClientConfig {
  const ssl = tlsOptions(postgres);
  return {
    connectionString: splitTlsParams(postgres.url).url,
    application_name: applicationName,
    ...(ssl === undefined ? {} : { ssl }),
    ...extra,
  };
}
