/**
 * Integration helpers for the pipeline: a sample CRM schema, a config pointing at a test database
 * and a simulator, and waits on what a user would watch (the slot's confirmed position, the
 * simulator's state, sync_status rows).
 */
import type { Logger } from 'pino';
import { expect } from 'vitest';
import { Bridge } from '../../src/pipeline/supervisor.js';
import { loadConfig } from '../../src/config/load-config.js';
import type { Config } from '../../src/config/types.js';
import { createLogger, silentLogger } from '../../src/ops/logger.js';
import { TuzhanClient } from '../../src/tuzhan/client.js';
import type { TestDatabase } from './database.js';

/** Customer profiles (row mode, mixed-case groups column) and memberships (membership mode). */
export const CRM_SCHEMA = `
  CREATE SCHEMA crm;
  CREATE TABLE crm.customer_profile (
    cust_no text PRIMARY KEY,
    mobile text,
    wx_openid text,
    wx_unionid text,
    "Group Names" text,
    note text
  );
  ALTER TABLE crm.customer_profile REPLICA IDENTITY FULL;
  CREATE TABLE crm.member_group (
    id bigserial PRIMARY KEY,
    member_id text NOT NULL,
    group_name text NOT NULL,
    UNIQUE (member_id, group_name)
  );
  ALTER TABLE crm.member_group REPLICA IDENTITY FULL;
  CREATE TABLE crm.unrelated (id serial PRIMARY KEY, v text);
`;

export interface TestConfigOptions {
  db: TestDatabase;
  apiUrl: string;
  token?: string;
  /** Slot and publication name; default the database's name (slots are cluster-wide). */
  slot?: string;
  /** Publication name, when it is not the slot's. */
  publication?: string;
  sources?: string;
  batching?: Partial<Config['batching']>;
  extra?: string;
  /** postgres.onSlotLost */
  onSlotLost?: 'stop' | 'resync';
  /** postgres.failover (default: the config's default, auto) */
  failover?: 'auto' | 'on' | 'off';
}

export const DEFAULT_SOURCES = `
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, phone: mobile, openid: wx_openid, unionid: wx_unionid, groups: "Group Names" }
    match: { isMatching: false }
  - name: memberships
    table: crm.member_group
    mode: membership
    columns: { thirdId: member_id, groups: group_name }
    match: { isMatching: false }
`;

/** A config as YAML text (also written to files for spawned bridges). */
export function testConfigYaml(o: TestConfigOptions): string {
  const b = { maxBatchSize: 500, debounceMs: 20, maxWaitMs: 100, maxBufferedRows: 10000, ...o.batching };
  return `
postgres:
  url: ${o.db.url}
  slot: ${o.slot ?? o.db.name}
  publication: ${o.publication ?? o.slot ?? o.db.name}
  statusSchema: Tuzhan Sync
  onSlotLost: ${o.onSlotLost ?? 'stop'}${o.failover ? `\n  failover: ${o.failover}` : ''}
tuzhan:
  baseUrl: ${o.apiUrl}
  token: ${o.token ?? 'test-token'}
  timeoutMs: 2000
  concurrency: 4
batching:
  maxBatchSize: ${b.maxBatchSize}
  debounceMs: ${b.debounceMs}
  maxWaitMs: ${b.maxWaitMs}
  maxBufferedRows: ${b.maxBufferedRows}
http:
  listen: "off"
${o.extra ?? ''}
sources:
${o.sources ?? DEFAULT_SOURCES}
`;
}

export function testConfig(o: TestConfigOptions): Config {
  return loadConfig({ text: testConfigYaml(o), env: {} });
}

export interface TestBridge {
  bridge: Bridge;
  config: Config;
  /** Stops the bridge (drain, confirm) and closes its platform client. */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Starts a bridge in this process on a test config, with fast retries. TEST_LOG=1 shows its log.
 * When start fails, everything it opened is closed before the error is rethrown.
 */
export async function startTestBridge(
  o: TestConfigOptions & { logger?: Logger; resync?: boolean; lagIntervalMs?: number },
): Promise<TestBridge> {
  const config = testConfig(o);
  const logger =
    o.logger ?? (process.env.TEST_LOG ? createLogger({ level: 'debug', pretty: false }) : silentLogger());
  const client = new TuzhanClient(config.tuzhan, { logger, retryBaseMs: 10, retryMaxMs: 200 });
  const bridge = new Bridge({
    config,
    logger,
    sender: client,
    resync: o.resync,
    lagIntervalMs: o.lagIntervalMs,
  });
  const stop = async (timeoutMs = 5000): Promise<void> => {
    await bridge.stop(timeoutMs);
    await client.close();
  };
  try {
    await bridge.start();
  } catch (err) {
    await stop(1000);
    throw err;
  }
  return { bridge, config, stop };
}

/**
 * Waits until a bridge streams from `slot`: its first-start snapshot is done and the slot is in use.
 * (The slot is in use during the snapshot too, by the connection that created it.)
 */
export async function waitForStreaming(db: TestDatabase, slot: string, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => {
    const { rowCount } = await db.query(
      `SELECT 1 FROM pg_replication_slots s JOIN "Tuzhan Sync".bridge_state b ON b.slot = s.slot_name
        WHERE s.slot_name = $1 AND s.active AND b.snapshot_done_at IS NOT NULL`,
      [slot],
    );
    expect(rowCount).toBe(1);
  }, timeoutMs);
}

/** Polls until `fn` stops throwing (an expect inside), or rethrows its last error after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T> | T,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

/**
 * Waits until the slot has confirmed everything written so far: every change before now has its
 * outcome stored (the bridge confirms nothing earlier), and quiet WAL was confirmed on keepalives.
 */
export async function waitForCatchUp(db: TestDatabase, slot = db.name, timeoutMs = 30_000): Promise<void> {
  // The insert position, not pg_current_wal_lsn() (the *write* position): with asynchronous
  // commit the last commit record may not be written out yet.
  const { rows } = await db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const target = (rows[0] as { lsn: string }).lsn;
  await eventually(async () => {
    const r = await db.query<{ ok: boolean | null }>(
      `SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1`,
      [slot, target],
    );
    expect(r.rows[0]?.ok, `slot ${slot} confirmed ${target}`).toBe(true);
  }, timeoutMs);
}

/** sync_status rows of a source, keyed by row_key text. */
export async function statusRows(
  db: TestDatabase,
  source: string,
): Promise<
  Map<string, { op: string; status: string; error: string | null; attempts: number; payload: unknown }>
> {
  const { rows } = await db.query<{
    k: string;
    op: string;
    status: string;
    error: string | null;
    attempts: number;
    payload: unknown;
  }>(
    `SELECT row_key::text AS k, op, status, error, attempts, payload FROM "Tuzhan Sync".sync_status WHERE source = $1`,
    [source],
  );
  return new Map(rows.map((r) => [JSON.stringify(JSON.parse(r.k)), r]));
}

/** The platform state the CRM tables imply: groups per customer (thirdId), both sources merged. */
export async function expectedGroups(db: TestDatabase): Promise<Record<string, string[]>> {
  const out: Record<string, Set<string>> = {};
  const add = (id: string, g: string) => (out[id] ??= new Set()).add(g);
  const p = await db.query<{ cust_no: string; groups: string | null }>(
    `SELECT cust_no, "Group Names" AS groups FROM crm.customer_profile`,
  );
  for (const r of p.rows)
    for (const g of (r.groups ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean))
      add(r.cust_no, g);
  const m = await db.query<{ member_id: string; group_name: string }>(
    `SELECT member_id, group_name FROM crm.member_group`,
  );
  for (const r of m.rows) add(r.member_id, r.group_name);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}
