/**
 * What an operator reads in the log of a running bridge: one line saying what starts, one saying
 * where it stopped, and a database outage as one warning and one recovery, not a pair of lines per
 * reconnect attempt.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/ops/logger.js';
import { usePipelineFixture } from '../helpers/fixture.js';
import { eventually, testConfig, waitForCatchUp } from '../helpers/pipeline.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

interface Line {
  level: string;
  time: string;
  msg: string;
  [k: string]: unknown;
}

describe('the log of a bridge through a database outage', () => {
  const fx = usePipelineFixture('log lines', { per: 'file' });
  let proxy: TcpProxy;
  let daemon: Daemon | undefined;
  const chunks: string[] = [];
  const lines = (): Line[] =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Line);

  beforeAll(async () => {
    const u = new URL(fx.db.url);
    proxy = await startTcpProxy(u.hostname, Number(u.port));
  });
  afterAll(async () => {
    await daemon?.stop(2000).catch(() => {});
    await proxy?.close();
  });

  it('says what starts, an outage once, and where it stopped', async () => {
    const config = testConfig({ db: { ...fx.db, url: proxy.url(fx.db.url) }, apiUrl: fx.sim.url });
    const destination = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: 'info', pretty: false, destination });
    daemon = await startDaemon(config, logger, { summaryIntervalMs: 500 });

    const first = lines()[0] as Line;
    expect(first).toMatchObject({
      level: 'info',
      slot: fx.db.name,
      publication: fx.db.name,
      statusSchema: 'Tuzhan Sync',
      sources: ['profiles (crm.customer_profile, row)', 'memberships (crm.member_group, membership)'],
    });
    expect(first.msg).toMatch(
      /^tuzhan-cdc \d+\.\d+\.\d+\S* starting: 2 sources, slot \S+, status schema Tuzhan Sync$/,
    );
    expect(first.time).toMatch(/^\d{4}-\d\d-\d\dT/);

    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('l1', 'a')`);
    await waitForCatchUp(fx.db);
    // A summary of what was sent, at info; no line per request.
    await eventually(() =>
      expect(lines().some((l) => /^sent \d+ requests? in the last/.test(l.msg))).toBe(true),
    );
    expect(lines().filter((l) => l.msg === 'batch sent')).toEqual([]);

    // The network to the database goes away for a while; changes go on meanwhile.
    const before = lines().length;
    proxy.cut();
    await fx.db.query(`INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('l2', 'b')`);
    await new Promise((r) => setTimeout(r, 8000));
    const during = lines().slice(before);
    proxy.restore();
    await waitForCatchUp(fx.db, fx.db.name, 60_000);
    await eventually(() => expect(fx.sim.groupsOf('thirdId', 'l2')).toEqual(['b']));
    const after = lines().slice(before + during.length);

    const count = (ls: Line[], msg: string) => ls.filter((l) => l.msg === msg).length;
    expect(count(during, 'replication stream lost; reconnecting')).toBe(1);
    expect(count(during, 'replication stream started'), JSON.stringify(during, null, 1)).toBe(0);
    // However many attempts it took, no line repeats at info or above.
    const repeated = Object.entries(
      during
        .filter((l) => l.level !== 'debug')
        .reduce<Record<string, number>>((n, l) => ({ ...n, [l.msg]: (n[l.msg] ?? 0) + 1 }), {}),
    ).filter(([, n]) => n > 2);
    expect(repeated, JSON.stringify(during, null, 1)).toEqual([]);
    expect(count(after, 'replication stream back')).toBe(1);
    expect(after.find((l) => l.msg === 'replication stream back')).toMatchObject({ level: 'info' });

    await daemon.stop();
    daemon = undefined;
    const last = lines().at(-1) as Line;
    const slot = await fx.db.query<{ lsn: string }>(
      `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
      [fx.db.name],
    );
    const lsn = slot.rows[0]?.lsn as string;
    expect(last).toMatchObject({ level: 'info', slot: fx.db.name, confirmed: lsn });
    expect(last.msg).toBe(`stopped; slot ${fx.db.name} confirmed up to ${lsn}`);
  }, 120_000);
});
