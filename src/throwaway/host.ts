/**
 * What the ways to a throwaway PostgreSQL share (./postgres.ts, ./fallbacks.ts): the server handle
 * they return, a free port, and who we run as (PostgreSQL refuses to run as root).
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';

export interface RunningPostgres {
  /** Superuser URL of the `postgres` database. */
  url: string;
  /** How the server was found: env, local, docker or embedded. */
  kind: 'env' | 'local' | 'docker' | 'embedded';
  version: string;
  stop(): Promise<void>;
  /**
   * `pg_ctl restart -m <mode>` (servers started with pg_ctl only). Rejects when the old server did
   * not stop within `timeoutSeconds` (pg_ctl's -t), e.g. because a client holds a walsender.
   */
  restart?(mode: 'fast' | 'smart' | 'immediate', timeoutSeconds: number): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function postgresUserIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined; // no such user
  }
}

export async function serverVersion(url: string): Promise<string> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(
      `SELECT 'PostgreSQL ' || current_setting('server_version') AS v`,
    );
    return rows[0]?.v ?? 'unknown';
  } finally {
    await client.end();
  }
}
