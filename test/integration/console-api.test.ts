/**
 * The web console's JSON API and its guards, against a status schema filled by hand (no bridge):
 * the numbers it shows are the SQL views' numbers, search finds rows by key and by every identity
 * with the request that carried them, failures group and page, every statement has an index to
 * use, and the API refuses what it must (no token, another site, another host name, a GET action).
 */
import http from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { createBridgeEvents } from '../../src/domain/events.js';
import { createConsole, type RetryReport, type WebConsole } from '../../src/ops/console/console.js';
import { silentLogger } from '../../src/ops/logger.js';
import { Metrics } from '../../src/ops/metrics.js';
import { startOpsServer, type OpsServer } from '../../src/ops/ops-server.js';
import { consoleSql, SEARCHED_IDENTITIES } from '../../src/status/console-sql.js';
import { createIdentityIndexes } from '../../src/status/identity-indexes.js';
import { migrate } from '../../src/status/migrate.js';
import { statusSql } from '../../src/status/sql.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { testConfig } from '../helpers/pipeline.js';

const SCHEMA = 'Tuzhan Sync';
const S = `"${SCHEMA}"`;
const XSS = '<img src=x onerror=alert(1)>';
const TOKEN = 'console-secret';
/** Enough synced rows that the planner prefers indexes for the selective statements. */
const BULK = 20_000;

interface Served {
  url: string;
  console: WebConsole;
  server: OpsServer;
}

describe('console API', () => {
  let db: TestDatabase;
  let config: Config;
  let open: Served;
  let guarded: Served;
  const retried: Array<{ source: string; error: string | null }> = [];

  async function serve(c: Config): Promise<Served> {
    const webConsole = createConsole({
      config: c,
      logger: silentLogger(),
      retry: async (g): Promise<RetryReport> => {
        retried.push(g);
        return { rows: 1, outcomes: { synced: 1 }, stillFailed: [] };
      },
    });
    const server = await startOpsServer({
      listen: { host: '127.0.0.1', port: 0 },
      metrics: new Metrics(createBridgeEvents(), { processMetrics: false }),
      readiness: () => ({ ready: true, checks: {} }),
      logger: silentLogger(),
      token: c.http.token,
      console: webConsole,
    });
    return { url: server.url, console: webConsole, server };
  }

  beforeAll(async () => {
    db = await createTestDatabase('console api');
    await migrate(db.url, SCHEMA);
    // One request and the outcomes it stored, in one transaction as the bridge writes them.
    await db.query(`
      BEGIN;
      INSERT INTO ${S}.sync_batch (source, opt_type, rows, http_status, code, msg, api_status, success_num, fail_num, started_at, duration_ms)
        VALUES ('profiles', 'update', 2, 200, '200', 'partly imported', 2, 1, 1, now() - interval '30 seconds', 42);
      INSERT INTO ${S}.sync_status (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload) VALUES
        ('profiles', '{"cust_no": "C1"}', 'update', 'synced', 1, NULL, '0/100', now() - interval '1 minute', now(),
         '{"thirdId": "C1", "phone": "13800000001", "unionid": "u-1", "groups": "vip"}'),
        ('profiles', '{"cust_no": "C2"}', 'update', 'failed', 1, 'no customer matches the row', '0/100',
         now() - interval '1 minute', now(), '{"thirdId": "C2", "openid": "o-2", "groups": "${XSS}"}');
      COMMIT;
    `);
    await db.query(`
      INSERT INTO ${S}.sync_status (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload) VALUES
        ('profiles', '{"cust_no": "C3"}', 'update', 'retrying', 2, 'HTTP 503', '0/200', now() - interval '5 minutes', now(), NULL),
        ('profiles', '{"cust_no": "C4"}', 'add', 'accepted', 1, NULL, '0/200', now() - interval '3 minutes', now(), '{"thirdId": "C4", "groups": "a"}'),
        ('profiles', '{"cust_no": "C5"}', 'add', 'skipped', 0, NULL, '0/200', now(), now(), NULL),
        ('profiles', '{"cust_no": "C6"}', 'update', 'failed', 1, 'group name "${XSS},x" contains a comma', '0/300', now(), now() + interval '1 second', NULL);
      INSERT INTO ${S}.sync_status (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
        SELECT 'memberships', jsonb_build_object('id', g::text), 'add', 'failed', 1, 'no customer matches the row', '0/400',
               now() - make_interval(secs => g), now() - make_interval(secs => g), jsonb_build_object('thirdId', 'm' || g, 'groups', 'gold')
          FROM generate_series(1, 45) g;
      INSERT INTO ${S}.sync_status (source, row_key, op, status, attempts, error, lsn, committed_at, synced_at, payload)
        SELECT CASE WHEN g % 2 = 0 THEN 'profiles' ELSE 'memberships' END, jsonb_build_object(CASE WHEN g % 2 = 0 THEN 'cust_no' ELSE 'id' END, 'B' || g),
               'update', 'synced', 1, NULL, '0/500', now() - interval '1 hour', now() - interval '1 hour',
               jsonb_build_object('thirdId', 'B' || g, 'phone', (15000000000 + g)::text, 'openid', 'ob' || g, 'groups', 'bulk')
          FROM generate_series(1, ${BULK}) g;
    `);
    // Requests of other transactions than the outcomes above (one statement string is one transaction).
    await db.query(`
      INSERT INTO ${S}.sync_batch (source, opt_type, rows, http_status, code, msg, api_status, success_num, fail_num, started_at, duration_ms)
        SELECT 'memberships', 'add', 500, 200, '200', 'ok', 1, 500, 0, now() - make_interval(secs => g * 5), 30 FROM generate_series(1, 40) g;
      INSERT INTO ${S}.sync_batch (source, opt_type, rows, http_status, code, msg, api_status, started_at, duration_ms)
        VALUES ('memberships', 'add', 3, 400, '400', 'bad request', NULL, now() - interval '10 seconds', 5),
               ('profiles', 'truncate', 0, NULL, NULL, 'TRUNCATE', NULL, now(), 0);
      ANALYZE ${S}.sync_row; ANALYZE ${S}.sync_batch;
    `);
    // The optional identity indexes, as a DBA creates them (sql/optional/identity-indexes.sql).
    await createIdentityIndexes(db.url, SCHEMA);
    await db.query(`ANALYZE ${S}.sync_row`); // statistics of the indexes' expressions too
    config = testConfig({ db, apiUrl: 'http://127.0.0.1:9' });
    open = await serve(config);
    guarded = await serve({ ...config, http: { listen: { host: '0.0.0.0', port: 9464 }, token: TOKEN } });
  });
  afterAll(async () => {
    for (const s of [open, guarded]) {
      await s?.server.close();
      await s?.console.close();
    }
    await db?.drop();
  });

  async function get(path: string, o: Served = open, headers: Record<string, string> = {}) {
    const res = await fetch(`${o.url}${path}`, { headers });
    const text = await res.text();
    let body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, headers: res.headers, body };
  }

  it('the overview shows the numbers of sync_summary, the backlog and the requests per source', async () => {
    const { status, body } = await get('/console/api/overview');
    expect(status).toBe(200);
    const summary = await db.query<{ source: string; status: string; rows: string }>(
      `SELECT source, status, rows::text FROM ${S}.sync_summary`,
    );
    expect(summary.rows.length).toBeGreaterThan(5);
    for (const r of summary.rows) {
      const source = body.sources.find((s: { name: string }) => s.name === r.source);
      expect(source.counts[r.status], `${r.source} ${r.status}`).toBe(Number(r.rows));
      expect(source.exact).toBe(true);
    }
    const profiles = body.sources.find((s: { name: string }) => s.name === 'profiles');
    // Backlog: retrying and accepted rows, the oldest committed five minutes ago.
    expect(profiles.backlog.rows).toBe(2);
    expect(profiles.backlog.ageSeconds).toBeGreaterThan(290);
    expect(profiles.requests.total).toBe(1);
    expect(profiles.requests.outcomes).toMatchObject({ partial: 1, ok: 0 });
    const memberships = body.sources.find((s: { name: string }) => s.name === 'memberships');
    expect(memberships.requests).toMatchObject({
      total: 41,
      rows: 40 * 500 + 3,
      outcomes: { ok: 40, rejected: 1 },
    });
    expect(Date.parse(memberships.lastSuccessAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(body.slot).toMatchObject({ name: config.postgres.slot, exists: false });

    // Per minute, requests and rows add up to the window's totals.
    const perMinute = memberships.requests.perMinute as Array<{ requests: number; rows: number }>;
    expect(perMinute.reduce((n, m) => n + m.requests, 0)).toBe(41);
    expect(perMinute.reduce((n, m) => n + m.rows, 0)).toBe(40 * 500 + 3);

    // The recent rate, from the raw requests: those started in the five minutes before the
    // overview was made, over the time since the first of them (at least a minute).
    const now = Date.parse(body.generatedAt);
    const batches = await db.query<{ source: string; started_at: Date; rows: number }>(
      `SELECT source, started_at, rows FROM ${S}.sync_batch WHERE opt_type <> 'truncate'`,
    );
    for (const source of body.sources as Array<{
      name: string;
      requests: { rate: Record<string, number> };
    }>) {
      const recent = batches.rows.filter(
        (b) => b.source === source.name && b.started_at.getTime() > now - 300_000,
      );
      const first = Math.min(...recent.map((b) => b.started_at.getTime()));
      const seconds = Math.min(300, Math.max(60, (now - first) / 1000));
      const rows = recent.reduce((n, b) => n + b.rows, 0);
      expect(source.requests.rate, source.name).toEqual(
        recent.length === 0
          ? { requestsPerMinute: 0, rowsPerMinute: 0, overSeconds: 0 }
          : {
              requestsPerMinute: (recent.length * 60) / seconds,
              rowsPerMinute: (rows * 60) / seconds,
              overSeconds: seconds,
            },
      );
    }
    // 41 requests in the last ~200 s are some 12 a minute, not the 15-minute window's 41 / 15.
    expect(memberships.requests.rate.requestsPerMinute).toBeGreaterThan(10);
  });

  it('the health the page header shows, without a query', async () => {
    const { status, body } = await get('/console/api/health');
    expect(status).toBe(200);
    // No bridge in this process (the console alone): the pill says so.
    expect(body).toEqual({ generatedAt: expect.any(String), ready: null });
    expect(Number.isNaN(Date.parse(body.generatedAt))).toBe(false);
  });

  it('finds a customer by source key, by the key as JSON and by every identity, with the request that carried it', async () => {
    const byKey = (await get('/console/api/search?q=C1')).body;
    expect(byKey.rows.map((r: { rowKey: unknown }) => r.rowKey)).toEqual([{ cust_no: 'C1' }]);
    expect(byKey.rows[0].matchedBy).toEqual(['key', 'thirdId']);
    expect(byKey.rows[0].request).toMatchObject({
      optType: 'update',
      rows: 2,
      code: '200',
      apiStatus: 2,
      durationMs: 42,
    });
    for (const [q, field] of [
      ['13800000001', 'phone'],
      ['u-1', 'unionid'],
    ]) {
      const res = (await get(`/console/api/search?q=${q}`)).body;
      expect(
        res.rows.map((r: { rowKey: unknown }) => r.rowKey),
        q,
      ).toEqual([{ cust_no: 'C1' }]);
      expect(res.rows[0].matchedBy).toEqual([field]);
    }
    const failed = (await get(`/console/api/search?q=o-2`)).body.rows[0];
    expect(failed).toMatchObject({
      status: 'failed',
      error: 'no customer matches the row',
      payload: { groups: XSS },
    });
    expect(failed.request).toMatchObject({ httpStatus: 200, msg: 'partly imported' });
    const json = (await get(`/console/api/search?q=${encodeURIComponent('{"id": "7"}')}&source=memberships`))
      .body;
    expect(json.rows).toHaveLength(1);
    expect(json.rows[0]).toMatchObject({ source: 'memberships', status: 'failed', request: null });
    // An outcome stored without a request (retrying) has none; a bulk row is found by phone.
    expect((await get('/console/api/search?q=C3')).body.rows[0].request).toBeNull();
    expect((await get('/console/api/search?q=15000000042')).body.rows[0].rowKey).toEqual({ cust_no: 'B42' });
    expect((await get('/console/api/search?q=nobody')).body.rows).toEqual([]);
    expect((await get(`/console/api/search?q=${encodeURIComponent('{not json')}`)).status).toBe(400);
    expect((await get(`/console/api/search?q=${'x'.repeat(201)}`)).status).toBe(400);
    expect((await get('/console/api/search?q=C1&source=nope')).status).toBe(400);
    expect((await get('/console/api/failures?limit=101')).status).toBe(400);
  });

  it('groups failed and retrying rows by error, newest first, and pages through a group', async () => {
    const all = (await get('/console/api/failures')).body;
    expect(
      all.groups.map((g: { source: string; status: string; error: string; rows: number }) => [
        g.source,
        g.status,
        g.error,
        g.rows,
      ]),
    ).toEqual([
      ['profiles', 'failed', `group name "${XSS},x" contains a comma`, 1],
      ['profiles', 'retrying', 'HTTP 503', 1],
      ['profiles', 'failed', 'no customer matches the row', 1],
      ['memberships', 'failed', 'no customer matches the row', 45],
    ]);
    const paged = (await get('/console/api/failures?status=failed&limit=2&offset=1')).body;
    expect(paged.groups.map((g: { rows: number }) => g.rows)).toEqual([1, 45]);
    expect(paged.more).toBe(false);

    const group = all.groups[3].id as string;
    const seen: unknown[] = [];
    let after: string | null = null;
    do {
      const page: { body: { rows: Array<{ rowKey: { id: string } }>; next: string | null } } = await get(
        `/console/api/failures/rows?group=${group}&limit=20${after ? `&after=${after}` : ''}`,
      );
      seen.push(...page.body.rows.map((r) => r.rowKey.id));
      after = page.body.next;
    } while (after);
    // Newest first (synced_at descends with the id), every row once.
    expect(seen).toEqual(Array.from({ length: 45 }, (_, i) => String(i + 1)));
  });

  it("the retry's pages of a group hold every failed row of it once, in key order", async () => {
    const sql = statusSql(SCHEMA).failedRowsWithError;
    const keys: string[] = [];
    for (let after: string | null = null; ;) {
      const res: pg.QueryResult<{ k: string }> = await db.query<{ k: string }>(sql, [
        'memberships',
        after,
        20,
        'no customer matches the row',
      ]);
      if (res.rows.length === 0) break;
      keys.push(...res.rows.map((r) => r.k));
      after = res.rows[res.rows.length - 1]!.k;
    }
    const expected = await db.query<{ k: string }>(
      `SELECT key AS k FROM ${S}.sync_status WHERE source = 'memberships' AND status = 'failed' ORDER BY key`,
    );
    expect(keys).toEqual(expected.rows.map((r) => r.k));
    expect(keys).toHaveLength(45);
  });

  it('every statement has an index to use on sync_row and sync_batch', async () => {
    const sql = consoleSql(SCHEMA);
    const group = ['failed', 'memberships', 'no customer matches the row'];
    const statements: Array<[string, string, unknown[], string[]]> = [
      ['sourceRows', sql.sourceRows, ['profiles'], ['sync_row_pkey']],
      ['keyShape', sql.keyShape, ['profiles'], ['sync_row_pkey']],
      ['unsyncedCounts', sql.unsyncedCounts, [], ['sync_row_unsynced_idx']],
      ['backlog', sql.backlog, [], ['sync_row_unsynced_idx']],
      ['recentRequests', sql.recentRequests, [10_000, 15], ['sync_batch_started_at_idx']],
      [
        'requestRate',
        sql.requestRate,
        [new Date(Date.now() - 300_000).toISOString(), 10_000],
        ['sync_batch_started_at_idx'],
      ],
      [
        'search',
        sql.search(SEARCHED_IDENTITIES),
        [['profiles', 'memberships'], ['{"cust_no":"C1"}'], null, 21, 'C1'],
        [
          'sync_row_pkey',
          'sync_row_thirdid_idx',
          'sync_row_phone_idx',
          'sync_row_openid_idx',
          'sync_row_unionid_idx',
          'sync_batch_started_at_idx',
        ],
      ],
      ['failureGroups', sql.failureGroups, [null, null, 21, 0], ['sync_row_unsynced_idx']],
      ['groupRows', sql.groupRows, [...group, null, null, 21], ['sync_row_unsynced_idx']],
      [
        'failedRowsWithError',
        statusSql(SCHEMA).failedRowsWithError,
        ['memberships', null, 500, group[2]],
        ['sync_row_unsynced_idx'],
      ],
    ];
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      // Natural choice first: on this table the planner picks the index for the selective ones.
      for (const name of ['search', 'groupRows', 'failedRowsWithError'] as const) {
        const [, text, params] = statements.find(([n]) => n === name)!;
        const plan = await explain(client, text, params);
        if (process.env.SHOW_PLANS) console.log(name, plan);
        expect(plan, name).not.toMatch(/Seq Scan on sync_row/);
      }
      // Then proof of an index for each (the ones that read a whole source may prefer a scan on a
      // small table, where a scan is cheap: they run only below the exact-count limit).
      // Generic plans (parameters unknown to the planner), so no index is chosen for one value only:
      // a partial index must be implied by the statement's own text.
      await client.query('SET enable_seqscan = off');
      await client.query('SET plan_cache_mode = force_generic_plan');
      for (const [name, text, params, indexes] of statements) {
        const plan = await explain(client, text, params, true);
        expect(plan, name).not.toMatch(/Seq Scan on (sync_row|sync_batch|sync_source)/);
        for (const index of indexes) expect(plan, `${name} uses ${index}`).toContain(index);
      }
      // An operator's own query of the view by an identity uses the same optional index.
      await client.query('RESET enable_seqscan');
      for (const field of SEARCHED_IDENTITIES) {
        const plan = await explain(
          client,
          `SELECT * FROM ${S}.sync_status WHERE payload ->> '${field}' = $1`,
          ['nobody'],
        );
        expect(plan, field).toContain(`sync_row_${field.toLowerCase()}_idx`);
      }
    } finally {
      await client.end();
    }
  });

  it('actions: a failed group is retried through the given path, a retrying group is refused', async () => {
    const groups = (await get('/console/api/failures')).body.groups as Array<{ id: string; status: string }>;
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${open.url}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    const failed = groups.find((g) => g.status === 'failed')!;
    const res = await post('/console/api/retry', { group: failed.id });
    expect(res.status).toBe(202);
    expect(retried).toEqual([{ source: 'profiles', error: `group name "${XSS},x" contains a comma` }]);
    const retrying = groups.find((g) => g.status === 'retrying')!;
    expect((await post('/console/api/retry', { group: retrying.id })).status).toBe(409);
    expect((await post('/console/api/retry', { group: 'not-a-group' })).status).toBe(400);
    // A backfill request is a row of the backfill table; a second one while it is pending is not.
    const first = await post('/console/api/backfill', { source: 'profiles' });
    expect(first.status).toBe(201);
    expect((await post('/console/api/backfill', { source: 'profiles' })).status).toBe(200);
    const rows = await db.query(`SELECT source, reason, status FROM ${S}.backfill`);
    expect(rows.rows).toEqual([{ source: 'profiles', reason: 'requested', status: 'pending' }]);
    expect((await post('/console/api/backfill', { source: 'nope' })).status).toBe(400);
    // Held rows: an unknown source or action is refused with the one field named, nothing started.
    const unknown = await post('/console/api/held', { source: 'nope', action: 'approve' });
    expect([unknown.status, await unknown.text()]).toEqual([400, expect.stringContaining('source:')]);
    const bad = await post('/console/api/held', { source: 'profiles', action: 'delete' });
    expect([bad.status, await bad.text()]).toEqual([
      400,
      expect.stringContaining('action: approve or reject'),
    ]);
    const actions = (await get('/console/api/actions')).body.actions;
    expect(actions.map((a: { kind: string; state: string }) => [a.kind, a.state])).toEqual([
      ['backfill', 'done'],
      ['backfill', 'done'],
      ['retry', 'done'],
    ]);
  });

  it('refuses: cross-site, another origin, GET or text/plain for actions, a foreign Host without a token', async () => {
    const action = (headers: Record<string, string>, method = 'POST') =>
      fetch(`${open.url}/console/api/backfill`, {
        method,
        headers,
        body: method === 'POST' ? JSON.stringify({ source: 'memberships' }) : undefined,
      }).then((r) => r.status);
    const json = { 'Content-Type': 'application/json' };
    expect(await action({ ...json, 'Sec-Fetch-Site': 'cross-site' })).toBe(403);
    expect(await action({ ...json, 'Sec-Fetch-Site': 'same-site' })).toBe(403);
    expect(await action({ ...json, Origin: 'http://evil.example' })).toBe(403);
    expect(await action({ 'Content-Type': 'text/plain' })).toBe(415);
    expect(await action({}, 'GET')).toBe(405);
    expect((await db.query(`SELECT 1 FROM ${S}.backfill WHERE source = 'memberships'`)).rowCount).toBe(0);
    // DNS rebinding: a page of evil.example resolving to 127.0.0.1 is same-origin; its Host is not ours.
    expect((await rawGet(open.url, '/console/api/overview', 'evil.example')).status).toBe(403);
    expect((await rawGet(open.url, '/console/', 'evil.example')).status).toBe(403);
    expect((await rawGet(open.url, '/console/api/overview', 'localhost')).status).toBe(200);
    const page = await get('/console/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect((await get('/')).status).toBe(200); // redirected to /console/
  });

  it('with http.token: every API call needs it, compared whole; the page itself holds no data', async () => {
    expect((await get('/console/api/overview', guarded)).status).toBe(401);
    expect((await get('/console/api/search?q=C1', guarded)).status).toBe(401);
    expect((await get('/console/api/overview', guarded, { Authorization: `Bearer ${TOKEN}x` })).status).toBe(
      401,
    );
    expect(
      (await get('/console/api/overview', guarded, { Authorization: `Bearer ${TOKEN.slice(0, -1)}` })).status,
    ).toBe(401);
    const ok = await get('/console/api/search?q=C1', guarded, { Authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.body.rows).toHaveLength(1);
    const post = await fetch(`${guarded.url}/console/api/backfill`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ source: 'memberships' }),
    });
    expect(post.status).toBe(401);
    // Any host name is fine with a token (a proxy, a DNS name): the token is the guard.
    expect((await rawGet(guarded.url, '/console/api/overview', 'bridge.internal:9464')).status).toBe(401);
    const page = await get('/console/', guarded);
    expect(page.status).toBe(200);
    expect(page.body).not.toMatch(/13800000001|no customer matches|memberships/);
  });

  it('an identity without an index is not searched (no scan), and the answer says so', async () => {
    await db.query(`DROP INDEX ${S}.sync_row_unionid_idx`);
    const fresh = await serve(config);
    try {
      const byUnionid = (await get('/console/api/search?q=u-1', fresh)).body;
      expect(byUnionid.rows).toEqual([]);
      expect(byUnionid.identities).toEqual({
        searched: ['thirdId', 'phone', 'openid'],
        notIndexed: ['unionid'],
      });
      // The same row, by an identity that has its index.
      const byPhone = (await get('/console/api/search?q=13800000001', fresh)).body;
      expect(byPhone.rows.map((r: { rowKey: unknown }) => r.rowKey)).toEqual([{ cust_no: 'C1' }]);
      // By key, no identity is compared at all.
      const byKey = (await get(`/console/api/search?q=${encodeURIComponent('{"cust_no": "C1"}')}`, fresh))
        .body;
      expect(byKey.identities.searched).toEqual([]);
      expect(byKey.rows[0].matchedBy).toEqual(['key']);
    } finally {
      await fresh.server.close();
      await fresh.console.close();
      await createIdentityIndexes(db.url, SCHEMA);
    }
    expect((await get('/console/api/search?q=u-1')).body.rows).toHaveLength(1);
  });
});

/**
 * The plan of a statement with these parameters. `generic`: the plan made without knowing them (a
 * prepared statement under plan_cache_mode = force_generic_plan), as a driver that prepares
 * statements gets after a few runs; EXPLAIN with parameters would plan for their values.
 */
async function explain(client: pg.Client, sql: string, params: unknown[], generic = false): Promise<string> {
  const plan = (res: pg.QueryResult<{ 'QUERY PLAN': string }>) =>
    res.rows.map((r) => r['QUERY PLAN']).join('\n');
  if (!generic) return plan(await client.query(`EXPLAIN ${sql}`, params));
  await client.query(`PREPARE console_statement AS ${sql}`);
  try {
    // EXECUTE takes its arguments as SQL text: untyped literals, coerced to the statement's types.
    const literal = (v: unknown): string => {
      if (v === null) return 'NULL';
      if (typeof v === 'number') return String(v);
      if (Array.isArray(v))
        return client.escapeLiteral(
          `{${v.map((e) => `"${String(e).replace(/[\\"]/g, '\\$&')}"`).join(',')}}`,
        );
      return client.escapeLiteral(String(v));
    };
    const args = params.map(literal).join(', ');
    return plan(await client.query(`EXPLAIN EXECUTE console_statement${args ? `(${args})` : ''}`));
  } finally {
    await client.query('DEALLOCATE console_statement');
  }
}

/** A GET with a Host header of our choosing (fetch does not let one set it). */
function rawGet(base: string, path: string, host: string): Promise<{ status: number }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path, method: 'GET', headers: { Host: host } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
