import { afterEach, describe, expect, it } from 'vitest';
import { createBridgeEvents, listen, type BridgeEvents } from '../../src/domain/events.js';
import { Metrics } from '../../src/ops/metrics.js';
import { ReadinessTracker, type ReadinessOptions } from '../../src/ops/readiness.js';
import { startOpsServer, type OpsServer } from '../../src/ops/ops-server.js';
import { silentLogger } from '../../src/ops/logger.js';

const SERIES = [
  'tuzhan_cdc_rows_total',
  'tuzhan_cdc_requests_total',
  'tuzhan_cdc_request_duration_seconds_bucket',
  'tuzhan_cdc_request_duration_seconds_count',
  'tuzhan_cdc_retries_total',
  'tuzhan_cdc_buffered_rows',
  'tuzhan_cdc_inflight_rows',
  'tuzhan_cdc_slot_lag_bytes',
  'tuzhan_cdc_slot_lag_seconds',
  'tuzhan_cdc_last_success_timestamp_seconds',
  'tuzhan_cdc_streaming',
  'tuzhan_cdc_api_reachable',
  'tuzhan_cdc_platform_auth_ok',
  'tuzhan_cdc_confirmed_lsn_bytes',
  'tuzhan_cdc_process_cpu_seconds_total',
];

describe('ops HTTP server', () => {
  let server: OpsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(
    events: BridgeEvents,
    token?: string,
    readiness?: ReadinessOptions,
  ): Promise<{ server: OpsServer; metrics: Metrics }> {
    const metrics = new Metrics(events);
    const tracker = new ReadinessTracker(events, readiness);
    server = await startOpsServer({
      listen: { host: '127.0.0.1', port: 0 },
      metrics,
      readiness: () => tracker.readiness(),
      logger: silentLogger(),
      token,
    });
    return { server, metrics };
  }

  it('binds an ephemeral port and answers /healthz, 404 otherwise', async () => {
    const { server } = await start(createBridgeEvents());
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.url).not.toMatch(/:0$/);
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect((await health.text()).trim()).toBe('ok');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/healthz`, { method: 'POST' })).status).toBe(405);
  });

  it('with http.token, /metrics asks for it as a Bearer token; /healthz and /readyz stay open', async () => {
    const { server } = await start(createBridgeEvents(), 'ops-secret');
    const denied = await fetch(`${server.url}/metrics`);
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer ops-secreT' } });
    expect(wrong.status).toBe(401);
    const ok = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer ops-secret' } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('tuzhan_cdc_streaming');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
  });

  it('/readyz is 503 until streaming, 200 when streaming and the platform answers', async () => {
    const events = createBridgeEvents();
    const { server } = await start(events);
    let res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      ready: false,
      checks: { streaming: false, apiReachable: 'unknown', platformOk: true, credentials: 'unknown' },
    });

    events.emit('streaming', true);
    res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');

    events.emit('streaming', false);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
  });

  it('/readyz turns 503 once the platform has answered only failures for notReadyAfterMs', async () => {
    const events = createBridgeEvents();
    let now = 1_000_000;
    const { server } = await start(events, undefined, { notReadyAfterMs: 30_000, now: () => now });
    const request = (outcome: 'ok' | 'partial' | 'rejected' | 'transient' | 'auth') =>
      events.emit('request', { source: 's', optType: 'add', rows: 1, outcome, durationMs: 1 });
    const readyz = async () => {
      const res = await fetch(`${server.url}/readyz`);
      return { status: res.status, body: (await res.json()) as { checks: Record<string, unknown> } };
    };
    events.emit('streaming', true);
    request('ok');
    expect((await readyz()).body.checks.credentials).toBe('accepted');

    // 5xx and timeouts: ready within the grace period, not ready after it, ready at the next answer.
    request('transient');
    now += 29_000;
    request('transient');
    expect((await readyz()).status).toBe(200);
    now += 2_000;
    let r = await readyz();
    expect(r.status).toBe(503);
    expect(r.body.checks).toMatchObject({ platformOk: false, failingForSeconds: 31 });
    request('rejected'); // an answer about the data: the platform works
    expect((await readyz()).status).toBe(200);

    // Refused credentials, likewise, and they say so.
    request('auth');
    now += 30_000;
    r = await readyz();
    expect(r.status).toBe(503);
    expect(r.body.checks).toMatchObject({ credentials: 'refused', platformOk: false });
    request('partial');
    r = await readyz();
    expect(r.status).toBe(200);
    expect(r.body.checks).toMatchObject({ credentials: 'accepted', platformOk: true });
  });

  it('/metrics exposes every series fed by the events', async () => {
    const events = createBridgeEvents();
    await start(events);
    const before = Date.now() / 1000;
    events.emit('rows', { source: 'profiles', op: 'add', status: 'synced', count: 7 });
    events.emit('rows', { source: 'profiles', op: 'delete', status: 'failed', count: 2 });
    events.emit('request', {
      source: 'profiles',
      optType: 'add',
      rows: 9,
      outcome: 'partial',
      httpStatus: 200,
      code: '200',
      durationMs: 42,
    });
    events.emit('request', {
      source: 'profiles',
      optType: 'add',
      rows: 9,
      outcome: 'transient',
      durationMs: 3000,
    });
    events.emit('request', {
      source: 'profiles',
      optType: 'add',
      rows: 9,
      outcome: 'rejected',
      code: 'x-token: sekrit value',
      durationMs: 5,
    });
    events.emit('retry', { source: 'profiles', reason: 'transient', attempt: 1, delayMs: 500 });
    events.emit('buffer', { buffered: 120, inflight: 30 });
    events.emit('slotLag', { bytes: 4096, seconds: 1.5 });
    events.emit('streaming', true);
    events.emit('apiReachable', true);
    events.emit('confirmed', { lsn: '0/1500E910' });

    const res = await fetch(`${server!.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    for (const name of SERIES) expect(body, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));

    expect(body).toContain('tuzhan_cdc_rows_total{source="profiles",op="add",status="synced"} 7');
    expect(body).toContain(
      'tuzhan_cdc_requests_total{source="profiles",opt_type="add",outcome="partial",code="200"} 1',
    );
    expect(body).toContain(
      'tuzhan_cdc_requests_total{source="profiles",opt_type="add",outcome="transient",code="none"} 1',
    );
    // Free text from the platform never becomes a label value.
    expect(body).toContain('outcome="rejected",code="other"');
    expect(body).not.toContain('sekrit');
    expect(body).toContain(
      'tuzhan_cdc_request_duration_seconds_bucket{le="0.05",source="profiles",opt_type="add",outcome="partial"} 1',
    );
    expect(body).toContain('tuzhan_cdc_retries_total{source="profiles",reason="transient"} 1');
    expect(body).toMatch(/^tuzhan_cdc_buffered_rows 120$/m);
    expect(body).toMatch(/^tuzhan_cdc_inflight_rows 30$/m);
    expect(body).toMatch(/^tuzhan_cdc_slot_lag_bytes 4096$/m);
    expect(body).toMatch(/^tuzhan_cdc_slot_lag_seconds 1\.5$/m);
    expect(body).toMatch(/^tuzhan_cdc_streaming 1$/m);
    expect(body).toMatch(/^tuzhan_cdc_api_reachable 1$/m);
    expect(body).toMatch(new RegExp(`^tuzhan_cdc_confirmed_lsn_bytes ${0x1500e910}$`, 'm'));
    const last = Number(/^tuzhan_cdc_last_success_timestamp_seconds (\S+)$/m.exec(body)?.[1]);
    expect(last).toBeGreaterThanOrEqual(Math.floor(before));
  });

  it('a failing listener never throws into the emitter', async () => {
    const events = createBridgeEvents();
    const errors: unknown[] = [];
    const metrics = new Metrics(events, { processMetrics: false, onListenerError: (e) => errors.push(e) });
    listen(
      events,
      'rows',
      () => {
        throw new Error('listener bug');
      },
      (e) => errors.push(e),
    );
    // A malformed LSN makes the metrics listener itself throw.
    expect(() => events.emit('confirmed', { lsn: 'garbage' })).not.toThrow();
    expect(() => events.emit('rows', { source: 's', op: 'add', status: 'synced', count: 1 })).not.toThrow();
    expect(errors).toHaveLength(2);
    // The other listeners still ran.
    expect(await metrics.registry.getSingleMetricAsString('tuzhan_cdc_rows_total')).toContain(
      'tuzhan_cdc_rows_total{source="s",op="add",status="synced"} 1',
    );
  });

  it('close() returns promptly with a keep-alive connection open, and the port is released', async () => {
    const { server: s } = await start(createBridgeEvents());
    await fetch(`${s.url}/metrics`, { keepalive: true }).then((r) => r.text());
    await s.close();
    server = undefined;
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });

  it('rejects when the address is taken', async () => {
    const { server: s } = await start(createBridgeEvents());
    const port = Number(new URL(s.url).port);
    await expect(
      startOpsServer({
        listen: { host: '127.0.0.1', port },
        metrics: new Metrics(createBridgeEvents(), { processMetrics: false }),
        readiness: () => ({ ready: true, checks: {} }),
        logger: silentLogger(),
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
