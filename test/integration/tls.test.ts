/**
 * TLS to the CRM database, against a server with a self-signed certificate (for `localhost` only):
 * the URL's libpq parameters (`sslmode`, `sslrootcert`) and `postgres.ssl` mean what they mean to
 * psql, every connection (the pool, the commands, the replication stream) is encrypted, and no
 * command prints node-postgres's warning about sslmode semantics.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { pgClientConfig } from '../../src/util/pg-connection.js';
import {
  isRoot,
  postgresUserIds,
  startPostgres,
  type RunningPostgres,
} from '../../src/throwaway/postgres.js';
import { tempDir } from '../helpers/cleanup.js';
import { runCli, writeConfigFile } from '../helpers/cli.js';
import { databaseAt, withDatabase, type TestDatabase } from '../helpers/database.js';
import {
  CRM_SCHEMA,
  eventually,
  startTestBridge,
  testConfigYaml,
  waitForCatchUp,
  type TestBridge,
} from '../helpers/pipeline.js';

const SLOT = 'tls_stream';

/** A self-signed certificate for localhost (and not for 127.0.0.1), readable by the server. */
function selfSignedCertificate(): { dir: string; cert: string; key: string } {
  const dir = tempDir('tls');
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  chmodSync(key, 0o600);
  // The server runs as the postgres OS user when we are root: it must reach and own its key.
  const ids = isRoot() ? postgresUserIds() : undefined;
  if (ids) for (const f of [dir, cert, key]) chownSync(f, ids.uid, ids.gid);
  return { dir, cert, key };
}

function withParams(url: string, params: Record<string, string>, host?: string): string {
  const u = new URL(url);
  if (host) u.hostname = host;
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

describe('TLS to a server with a self-signed certificate', () => {
  let server: RunningPostgres;
  let tls: ReturnType<typeof selfSignedCertificate>;
  let db: TestDatabase;
  let sim: Simulator;
  let bridge: TestBridge | undefined;

  beforeAll(async () => {
    tls = selfSignedCertificate();
    server = await startPostgres({
      prefer: ['local', 'embedded'],
      settings: { ssl: 'on', ssl_cert_file: tls.cert, ssl_key_file: tls.key, max_connections: '30' },
    });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE DATABASE crm').finally(() => admin.end());
    const url = withDatabase(server.url, 'crm');
    db = databaseAt('crm', url);
    await db.query(CRM_SCHEMA);
    sim = await startSimulator({ token: 'test-token' });
  });
  afterAll(async () => {
    await bridge?.stop();
    await sim?.close();
    await server?.stop();
  });

  /** Whether a connection opened as the bridge opens them is encrypted. */
  async function encrypted(yaml: string): Promise<boolean> {
    const config = loadConfig({ text: yaml, env: {} });
    const client = new pg.Client(pgClientConfig(config.postgres, 'tls test'));
    await client.connect();
    try {
      const { rows } = await client.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      return rows[0]?.ssl === true;
    } finally {
      await client.end();
    }
  }

  const config = (url: string, extra = ''): string =>
    testConfigYaml({ db: { ...db, url }, slot: SLOT, apiUrl: sim.url }).replace(
      /^postgres:\n/m,
      `postgres:\n${extra}`,
    );

  it('sslmode=require encrypts without checking the certificate, and prints no warning', async () => {
    const url = withParams(db.url, { sslmode: 'require' });
    expect(await encrypted(config(url))).toBe(true);
    const r = await runCli(['--config', writeConfigFile(config(url)), 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/WARNING/);
  });

  it('sslmode=disable does not encrypt; no sslmode either', async () => {
    expect(await encrypted(config(withParams(db.url, { sslmode: 'disable' })))).toBe(false);
    expect(await encrypted(config(db.url))).toBe(false);
  });

  it('verify-full checks the chain and the host name, as psql does', async () => {
    // No root certificate: a self-signed one is not trusted.
    const untrusted = withParams(db.url, { sslmode: 'verify-full' }, 'localhost');
    const r = await runCli(['--config', writeConfigFile(config(untrusted)), 'check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^database +FAIL +.*self-signed certificate/m);

    const trusted = { sslmode: 'verify-full', sslrootcert: tls.cert };
    expect(await encrypted(config(withParams(db.url, trusted, 'localhost')))).toBe(true);
    // The certificate names localhost, not 127.0.0.1.
    await expect(encrypted(config(withParams(db.url, trusted, '127.0.0.1')))).rejects.toThrow(
      /Hostname\/IP does not match certificate's altnames/,
    );
    // verify-ca: the chain only.
    const ca = withParams(db.url, { sslmode: 'verify-ca', sslrootcert: tls.cert }, '127.0.0.1');
    expect(await encrypted(config(ca))).toBe(true);
  });

  it('postgres.ssl says the same: ca file and verify mode', async () => {
    const at = (host: string) => withParams(db.url, {}, host);
    const ssl = (verify: string) => `  ssl: { ca: ${tls.cert}, verify: ${verify} }\n`;
    expect(await encrypted(config(at('localhost'), ssl('full')))).toBe(true);
    await expect(encrypted(config(at('127.0.0.1'), ssl('full')))).rejects.toThrow(/altnames/);
    expect(await encrypted(config(at('127.0.0.1'), ssl('ca')))).toBe(true);
    expect(await encrypted(config(at('127.0.0.1'), '  ssl: { verify: none }\n'))).toBe(true);
    // The URL's sslmode wins over postgres.ssl.verify.
    expect(await encrypted(config(withParams(at('127.0.0.1'), { sslmode: 'disable' }), ssl('full')))).toBe(
      false,
    );
  });

  it('an unknown sslmode is a config error naming the key', async () => {
    const r = await runCli([
      '--config',
      writeConfigFile(config(withParams(db.url, { sslmode: 'required' }))),
      'check',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/invalid config: postgres\.url: sslmode must be one of disable, allow, prefer/);
  });

  it('the bridge streams over TLS: the replication connection is encrypted too', async () => {
    const url = withParams(db.url, { sslmode: 'verify-full', sslrootcert: tls.cert }, 'localhost');
    bridge = await startTestBridge({ db: { ...db, url }, slot: SLOT, apiUrl: sim.url });
    await db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('t1', 'secure')`);
    await waitForCatchUp(db, SLOT);
    await eventually(() => expect(sim.groupsOf('thirdId', 't1')).toEqual(['secure']));
    const { rows } = await db.query<{ backend_type: string; ssl: boolean }>(
      `SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
        WHERE a.application_name LIKE 'tuzhan-cdc%' ORDER BY 1`,
    );
    expect(rows.some((r) => r.backend_type === 'walsender')).toBe(true);
    expect(rows.every((r) => r.ssl)).toBe(true);
  });
});
