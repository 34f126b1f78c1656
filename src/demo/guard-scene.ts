/**
 * The demo's one look at the removal guard: a clean-up script deletes most customer profiles in
 * one transaction; the bridge holds it (nothing removed on the platform, the rows `held` with the
 * reason); the DBA finds part of them deleted by mistake and restores them from a backup; an
 * operator approves, and only what is still gone is removed (as `tuzhan-cdc held --approve` does).
 */
import type pg from 'pg';
import { removalLimit } from '../config/guard.js';
import type { Daemon } from '../daemon.js';
import type { Simulator } from '../simulator/server.js';
import { formatCount } from '../util/format.js';
import { sleep } from '../util/backoff.js';
import { readSlot } from '../source/slot.js';
import { parseLsn } from '../util/lsn.js';
import { DEMO_SLOT, DEMO_STATUS_SCHEMA } from './crm-sample.js';

export interface GuardSceneOptions {
  writer: pg.ClientBase;
  monitor: pg.ClientBase;
  daemon: Daemon;
  sim: Simulator;
  say(line: string): void;
  signal: AbortSignal;
}

const SOURCE = 'profiles';

/** Plays the scene; returns without a word when the sample is too small to need the guard. */
export async function guardScene(o: GuardSceneOptions): Promise<void> {
  const status = `"${DEMO_STATUS_SCHEMA}"`;
  const rows = Number(
    (
      await o.monitor.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM crm.customer_profile WHERE "Group Names" IS NOT NULL AND "Group Names" <> ''`,
      )
    ).rows[0]?.n ?? 0,
  );
  const known = Number(
    (
      await o.monitor.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM ${status}.sync_status WHERE source = $1`,
        [SOURCE],
      )
    ).rows[0]?.n ?? 0,
  );
  const limit = removalLimit({ kind: 'default' }, known) ?? 0;
  // More than the limit, and most of the table: what a WHERE clause left out of a DELETE does.
  const doomed = Math.min(rows, Math.max(Math.ceil(rows * 0.6), limit + 50));
  if (doomed <= limit) return;
  o.say(
    `\nthe removal guard: a clean-up script deletes ${formatCount(doomed)} of ${formatCount(rows)} customer profiles in one transaction`,
  );
  await o.writer.query(`CREATE TEMP TABLE demo_backup AS
    SELECT * FROM crm.customer_profile WHERE "Group Names" IS NOT NULL AND "Group Names" <> ''
     ORDER BY cust_no LIMIT ${doomed}`);
  await o.writer.query(`DELETE FROM crm.customer_profile WHERE cust_no IN (SELECT cust_no FROM demo_backup)`);
  // Two of them to watch: one the DBA will put back, one that stays gone.
  const watched = await o.writer.query<{ mobile: string }>(
    `(SELECT mobile FROM demo_backup WHERE mobile IS NOT NULL ORDER BY cust_no LIMIT 1)
     UNION ALL (SELECT mobile FROM demo_backup WHERE mobile IS NOT NULL ORDER BY cust_no DESC LIMIT 1)`,
  );
  const [kept, gone] = watched.rows.map((r) => r.mobile);
  const groups = (phone: string | undefined): string =>
    phone ? (o.sim.groupsOf('phone', phone) ?? []).join(', ') || 'none' : 'none';

  // Held once the slot is past the delete: the rows say why, and the platform still has their groups.
  await caughtUp(o);
  const held = (
    await o.monitor.query<{ rows: number; reason: string }>(
      `SELECT rows::int, reason FROM ${status}.sync_held WHERE source = $1 ORDER BY held_since LIMIT 1`,
      [SOURCE],
    )
  ).rows[0];
  if (!held) throw new Error('the mass delete was not held');
  o.say(`  held, nothing sent: ${held.reason}`);
  o.say(`  the platform still has their groups: ${kept} in ${groups(kept)}, ${gone} in ${groups(gone)}`);

  // A quarter of them went by mistake: the DBA puts them back; then an operator approves the rest.
  const restored = Math.ceil(doomed / 4);
  await o.writer.query(
    `INSERT INTO crm.customer_profile SELECT * FROM demo_backup ORDER BY cust_no LIMIT ${restored}`,
  );
  o.say(
    `  ${formatCount(restored)} of them were deleted by mistake: the DBA restores them from a backup; then the rest is approved (tuzhan-cdc held --source ${SOURCE} --approve)`,
  );
  const [result] = await o.daemon.bridge.settleHeld('approve', { source: SOURCE });
  const sent = Object.entries(result?.sent ?? {})
    .map(([op, n]) => `${formatCount(n)} ${op}`)
    .join(', ');
  o.say(
    `  approved ${formatCount(result?.rows ?? 0)} held rows, brought to what the table holds now (sent ${sent || 'nothing'}): ${kept} was restored and keeps ${groups(kept)}; ${gone} is still gone and now has ${groups(gone)}`,
  );
  await o.writer.query(`DROP TABLE demo_backup`);
}

/** Waits until the slot confirmed everything written so far (every change has its outcome). */
async function caughtUp(o: GuardSceneOptions): Promise<void> {
  const target = (await o.monitor.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`))
    .rows[0]?.lsn;
  for (let i = 0; i < 240; i++) {
    const slot = await readSlot(o.monitor, DEMO_SLOT);
    if (
      target &&
      slot?.confirmedFlushLsn !== null &&
      slot !== null &&
      slot.confirmedFlushLsn >= parseLsn(target)
    )
      return;
    await sleep(250, o.signal);
  }
  throw new Error('the bridge did not catch up after the mass delete');
}
