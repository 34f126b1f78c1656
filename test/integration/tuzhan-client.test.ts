import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { ApiAuthError, ApiRejectedError, ApiUnavailableError, BridgeError } from '../../src/errors.js';
import { RequestAbortedError, TuzhanClient, type TuzhanClientOptions } from '../../src/tuzhan/client.js';
import type { ApiRow, PublicParams } from '../../src/tuzhan/types.js';
import { startSimulator, type Simulator } from '../../src/simulator/server.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { eventually } from '../helpers/pipeline.js';

const TOKEN = 'static-token-Qx7';
const APP_ID = 'app-1';
const APP_SECRET = 'app-secret-Zz9';
const ADD: PublicParams = { isMatching: false, optType: 'add' };
const FUZZY: PublicParams = { isMatching: true, matchingType: 2, identifyWay: 2, optType: 'add' };
const silent = pino({ level: 'silent' });

let sim: Simulator;
const clients: TuzhanClient[] = [];

function client(over: Partial<Config['tuzhan']> = {}, opts: Partial<TuzhanClientOptions> = {}): TuzhanClient {
  const c = new TuzhanClient(
    {
      baseUrl: sim.url,
      batchAddPath: '/api/integrate/audience/group/rel/batchAdd',
      token: TOKEN,
      timeoutMs: 2000,
      concurrency: 4,
      ratePerSecond: 0,
      ...over,
    },
    { logger: silent, retryBaseMs: 1, retryMaxMs: 5, authRetryBaseMs: 1, authRetryMaxMs: 5, ...opts },
  );
  clients.push(c);
  return c;
}
const appClient = (over: Partial<Config['tuzhan']> = {}, opts: Partial<TuzhanClientOptions> = {}) =>
  client({ token: undefined, appId: APP_ID, appSecret: APP_SECRET, ...over }, opts);

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  sim = await startSimulator({
    token: TOKEN,
    appId: APP_ID,
    appSecret: APP_SECRET,
    registry: [
      { thirdId: 'm1', phone: '13800000001' },
      { thirdId: 'm2', phone: '13800000002' },
    ],
  });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  sim.reset();
});
afterAll(async () => {
  await sim.close();
});

describe('TuzhanClient outcomes', () => {
  it('status 1: every row synced, and the platform holds the groups', async () => {
    const r = await client().sendOnce(ADD, [
      { thirdId: 'c1', groups: 'vip,new' },
      { phone: '139', openid: null, groups: 'a' } as unknown as ApiRow,
    ]);
    expect(r).toMatchObject({ httpStatus: 200, code: '200', apiStatus: 1, successNum: 2, failNum: 0 });
    expect(r.outcomes).toEqual([{ status: 'synced' }, { status: 'synced' }]);
    expect(sim.groupsOf('thirdId', 'c1')).toEqual(['new', 'vip']);
    expect(sim.groupsOf('phone', '139')).toEqual(['a']);
  });

  it('status 2: rows in errorData fail with the platform message, the rest are synced', async () => {
    const r = await client().sendOnce(FUZZY, [
      { thirdId: 'm1', groups: 'g' },
      { thirdId: 'stranger', groups: 'g' },
      { phone: '13800000002', groups: 'g' },
    ]);
    expect(r.apiStatus).toBe(2);
    expect(r.outcomes).toEqual([
      { status: 'synced' },
      { status: 'failed', error: 'no customer matches the row' },
      { status: 'synced' },
    ]);
    expect(sim.groupsOf('phone', '13800000001')).toEqual(['g']);
    expect(sim.groupsOf('thirdId', 'stranger')).toBeUndefined();
  });

  it('status -1: all rows failed', async () => {
    const r = await client().sendOnce(FUZZY, [{ thirdId: 'x1' }, { thirdId: 'x2' }]);
    expect(r.apiStatus).toBe(-1);
    expect(r.outcomes.map((o) => o.status)).toEqual(['failed', 'failed']);
    expect(r.failNum).toBe(2);
  });

  it('status 0: rows accepted, applied by the platform later', async () => {
    sim.setFaults({ asyncStatus: true, asyncDelayMs: 50 });
    const r = await client().sendOnce(ADD, [{ thirdId: 'late', groups: 'g' }]);
    expect(r.apiStatus).toBe(0);
    expect(r.outcomes).toEqual([{ status: 'accepted' }]);
    expect(sim.groupsOf('thirdId', 'late')).toBeUndefined();
    await eventually(() => expect(sim.groupsOf('thirdId', 'late')).toEqual(['g']), 10_000, 10);
  });

  it('fails rows without any identity locally and sends the rest', async () => {
    const r = await client().sendOnce(ADD, [{ groups: 'g' }, { thirdId: 'ok', groups: 'g' }, { phone: '' }]);
    expect(r.outcomes.map((o) => o.status)).toEqual(['failed', 'synced', 'failed']);
    expect(r).toMatchObject({ successNum: 1, failNum: 2 });
    expect(sim.stats().byOptType.add.rows).toBe(1);
  });

  it('refuses 0 or more than 500 rows without a request', async () => {
    const c = client();
    await expect(c.sendOnce(ADD, [])).rejects.toMatchObject({ code: 'BATCH_SIZE' });
    const many = Array.from({ length: 501 }, (_, i) => ({ thirdId: `c${i}` }));
    await expect(c.sendOnce(ADD, many)).rejects.toMatchObject({ code: 'BATCH_SIZE' });
    const r = await c.sendOnce(ADD, many.slice(0, 500));
    expect(r.successNum).toBe(500);
    expect(sim.stats().requests).toBe(1);
  });
});

describe('TuzhanClient errors', () => {
  it('HTTP 500 is transient and changes nothing', async () => {
    sim.setFaults({ errorRate: 1 });
    const err = await rejection(client().sendOnce(ADD, [{ thirdId: 'c1', groups: 'g' }]));
    expect(err).toBeInstanceOf(ApiUnavailableError);
    expect(err).toMatchObject({ httpStatus: 500, retryable: true });
    expect(sim.groupsOf('thirdId', 'c1')).toBeUndefined();
  });

  it('429 carries Retry-After and send waits at least that long', async () => {
    sim.setFaults({ status429: 1, retryAfterSeconds: 1 });
    const c = client();
    const err = await rejection(c.sendOnce(ADD, [{ thirdId: 'c1' }]));
    expect(err).toMatchObject({ httpStatus: 429, retryAfterMs: 1000 });
    sim.setFaults({ status429: 1 });
    const delays: number[] = [];
    const started = Date.now();
    const r = await c.send(ADD, [{ thirdId: 'c1', groups: 'g' }], {
      onRetry: (i) => void delays.push(i.delayMs),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(delays).toEqual([1000]);
    expect(r.apiStatus).toBe(1);
    expect(sim.stats().served429).toBe(2);
  });

  it('a request without answer times out as transient', async () => {
    sim.setFaults({ timeoutRate: 1 });
    const started = Date.now();
    const err = await rejection(client({ timeoutMs: 200 }).sendOnce(ADD, [{ thirdId: 'c1' }]));
    expect(err).toBeInstanceOf(ApiUnavailableError);
    expect((err as Error).message).toContain('no answer within 200 ms');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a wrong static token is an auth error naming tuzhan.token (HTTP 200 and 401 alike)', async () => {
    for (const as401 of [false, true]) {
      sim.setFaults({ tokenErrorAs401: as401 });
      const err = await rejection(client({ token: 'wrong-token' }).sendOnce(ADD, [{ thirdId: 'c1' }]));
      expect(err).toBeInstanceOf(ApiAuthError);
      expect(err).toMatchObject({ configKey: 'tuzhan.token', httpStatus: as401 ? 401 : 200 });
    }
  });

  it('a wrong app secret (100100) is an auth error naming tuzhan.appId/tuzhan.appSecret', async () => {
    const err = await rejection(appClient({ appSecret: 'nope-secret' }).sendOnce(ADD, [{ thirdId: 'c1' }]));
    expect(err).toBeInstanceOf(ApiAuthError);
    expect(err).toMatchObject({ configKey: 'tuzhan.appId/tuzhan.appSecret', apiCode: '100100' });
    expect(sim.stats().requests).toBe(0);
  });

  it('an invalid request is an ApiRejectedError naming the field, from send as from sendOnce; nothing changes', async () => {
    const exactWithoutType: PublicParams = { isMatching: true, matchingType: 1, optType: 'add' };
    const err = await rejection(
      client().sendOnce(exactWithoutType, [{ identityType: 'thirdId', thirdId: 'm1' }]),
    );
    expect(err).toBeInstanceOf(ApiRejectedError);
    expect(err).toMatchObject({ httpStatus: 400, apiCode: '400' });
    expect((err as Error).message).toContain('accurateMatchType');
    await expect(client().send(exactWithoutType, [{ thirdId: 'm1' }])).rejects.toBeInstanceOf(
      ApiRejectedError,
    );
    expect(sim.groupsOf('thirdId', 'm1')).toBeUndefined();
  });
});

describe('TuzhanClient tokens', () => {
  it('fetches one token for 20 concurrent requests, and one again after they all expire', async () => {
    for (const as401 of [false, true]) {
      sim.reset();
      sim.setFaults({ tokenErrorAs401: as401, latencyMs: 20 });
      const c = appClient();
      const rows = (k: number): ApiRow[] => [{ thirdId: `c${k}`, groups: 'g' }];
      const first = await Promise.all(Array.from({ length: 20 }, (_, k) => c.sendOnce(ADD, rows(k))));
      expect(first.every((r) => r.apiStatus === 1)).toBe(true);
      expect(sim.stats().tokenFetches).toBe(1);
      sim.setFaults({ expireTokens: true });
      const second = await Promise.all(Array.from({ length: 20 }, (_, k) => c.sendOnce(ADD, rows(k + 20))));
      expect(second.every((r) => r.apiStatus === 1)).toBe(true);
      expect(sim.stats().tokenFetches).toBe(2);
      expect(sim.stats().authFailures).toBeGreaterThan(0);
      expect(sim.groupsOf('thirdId', 'c39')).toEqual(['g']);
    }
  });

  it('renews a token before it expires', async () => {
    const shortSim = await startSimulator({ appId: APP_ID, appSecret: APP_SECRET, tokenTtlSeconds: 1 });
    const c = new TuzhanClient(
      {
        baseUrl: shortSim.url,
        batchAddPath: '/api/open/audience/group/rel/batchAdd',
        appId: APP_ID,
        appSecret: APP_SECRET,
        timeoutMs: 2000,
        concurrency: 1,
        ratePerSecond: 0,
      },
      { logger: silent },
    );
    try {
      await c.sendOnce(ADD, [{ thirdId: 'a' }]);
      await new Promise((res) => setTimeout(res, 850));
      await c.sendOnce(ADD, [{ thirdId: 'b' }]);
      expect(shortSim.stats()).toMatchObject({ tokenFetches: 2, authFailures: 0 });
    } finally {
      await c.close();
      await shortSim.close();
    }
  });
});

describe('TuzhanClient.send', () => {
  it('retries transient failures until the platform answers', async () => {
    sim.setFaults({ errorRate: 1 });
    const attempts: number[] = [];
    const r = await client().send(ADD, [{ thirdId: 'c1', groups: 'g' }], {
      onRetry: ({ attempt, error }) => {
        expect(error).toBeInstanceOf(ApiUnavailableError);
        attempts.push(attempt);
        if (attempt === 3) sim.setFaults({ errorRate: 0 });
      },
    });
    expect(attempts).toEqual([1, 2, 3]);
    expect(r.outcomes).toEqual([{ status: 'synced' }]);
    expect(sim.stats().served500).toBe(3);
    expect(sim.groupsOf('thirdId', 'c1')).toEqual(['g']);
  });

  it('keeps retrying auth failures, logs the config key once per streak, and stops on abort', async () => {
    const log = captureLogger();
    const ac = new AbortController();
    const c = client({ token: 'wrong-token' }, { logger: log.logger });
    const err = await rejection(
      c.send(ADD, [{ thirdId: 'c1' }], {
        signal: ac.signal,
        onRetry: ({ attempt, error }) => {
          expect(error).toBeInstanceOf(ApiAuthError);
          if (attempt === 4) ac.abort();
        },
      }),
    );
    expect(err).toBeInstanceOf(RequestAbortedError);
    const errors = log.lines().filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ configKey: 'tuzhan.token' });
    expect(String(errors[0]?.msg)).toContain('tuzhan.token');
    expect(sim.stats().authFailures).toBe(4);
  });

  it('an abort interrupts a request in flight', async () => {
    sim.setFaults({ timeoutRate: 1 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const started = Date.now();
    const err = await rejection(
      client({ timeoutMs: 10_000 }).send(ADD, [{ thirdId: 'c1' }], { signal: ac.signal }),
    );
    expect(err).toBeInstanceOf(RequestAbortedError);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('TuzhanClient.check', () => {
  it('tells a good token, a refused one and an unreachable platform apart', async () => {
    expect(await client().check()).toMatchObject({ reachable: true, tokenAccepted: true });
    expect(await appClient().check()).toMatchObject({ reachable: true, tokenAccepted: true });
    expect(await client({ token: 'wrong-token' }).check()).toMatchObject({
      reachable: true,
      tokenAccepted: false,
    });
    const badApp = await appClient({ appSecret: 'nope-secret' }).check();
    expect(badApp).toMatchObject({ reachable: true, tokenAccepted: false });
    expect(badApp.detail).toContain('tuzhan.appId/tuzhan.appSecret');
    expect(await client({ baseUrl: 'http://127.0.0.1:1' }).check()).toMatchObject({ reachable: false });
    expect(sim.stats().byOptType.add.requests).toBe(0);
  });
});

describe('secrets', () => {
  it('never appear in logs or error messages', async () => {
    const log = captureLogger('trace');
    const messages: string[] = [];
    const collect = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => undefined,
        (err: unknown) => err,
      );
      if (e instanceof Error)
        messages.push(e.message, String(e.stack), String((e as { cause?: unknown }).cause ?? ''));
    };
    const opts = { logger: log.logger };
    const good = appClient({}, opts);
    await good.sendOnce(ADD, [{ thirdId: 'c1' }]);
    sim.setFaults({ expireTokens: true });
    await good.sendOnce(ADD, [{ thirdId: 'c2' }]);
    messages.push((await good.check()).detail);
    await collect(appClient({ appSecret: 'wrong-secret-Kk1' }, opts).sendOnce(ADD, [{ thirdId: 'c1' }]));
    await collect(appClient({ baseUrl: 'http://127.0.0.1:1' }, opts).sendOnce(ADD, [{ thirdId: 'c1' }]));
    await collect(client({ token: 'wrong-token-Ww2' }, opts).sendOnce(ADD, [{ thirdId: 'c1' }]));
    sim.setFaults({ timeoutRate: 1 });
    await collect(appClient({ timeoutMs: 100 }, opts).sendOnce(ADD, [{ thirdId: 'c1' }]));
    sim.setFaults({ timeoutRate: 0, errorRate: 1 });
    const ac = new AbortController();
    await collect(
      client({}, opts).send(ADD, [{ thirdId: 'c1' }], {
        signal: ac.signal,
        onRetry: ({ attempt }) => void (attempt === 2 && ac.abort()),
      }),
    );
    const everything = `${log.text()}\n${messages.join('\n')}`;
    expect(log.text()).toContain('obtained a platform access token');
    expect(log.text()).toContain('platform unavailable; retrying');
    expect(messages.length).toBeGreaterThanOrEqual(9);
    for (const secret of [TOKEN, APP_SECRET, 'wrong-secret-Kk1', 'wrong-token-Ww2']) {
      expect(everything).not.toContain(secret);
    }
    // Issued org tokens are 32 hex characters.
    expect(everything).not.toMatch(/[0-9a-f]{32}/);
  });
});

it('BridgeError is the base of every thrown client error', () => {
  expect(new RequestAbortedError()).toBeInstanceOf(BridgeError);
});
