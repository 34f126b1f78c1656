/**
 * The platform simulator (docs/design.md, "The platform"): a real `node:http` server speaking the vendor's wire
 * format, with token checks, strict validation, registry matching, the group semantics, per-row
 * `errorData`, injectable faults and endpoints exposing its state. Decisions (docs/tuzhan-api.md):
 * - a bad, expired or missing X-Token answers HTTP 200 `code: "100200"` (the vendor's usual shape;
 *   `faults.tokenErrorAs401` answers HTTP 401 with the same body instead);
 * - an invalid request answers HTTP 400 `code: "400"`, `errorCode: "PARAM_ERROR"`, `msg` naming
 *   the field, and changes nothing;
 * - 429 and 500 faults are decided before the request is looked at and never apply it; a timeout
 *   holds the socket without applying, unless `timeoutApplies` (applied, then the answer is lost).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { IDENTITY_FIELDS, type IdentityField } from '../config/types.js';
import { sleep } from '../util/backoff.js';
import { close, listen, readBody, sendJson } from '../util/http.js';
import type { ApiRow, OptType, PublicParams } from '../tuzhan/types.js';
import { carriesRejected, checkFaults, DEFAULT_FAULTS, type Faults } from './faults.js';
import { InFlight, type Overlaps } from './in-flight.js';
import { PlatformModel, type RegistryEntry } from './model.js';
import { Quota } from './quota.js';
import { emptyStats, type SimulatorStats } from './stats.js';
import { Tokens } from './tokens.js';
import { validateBatchAdd } from './validate.js';

export const BATCH_ADD_PATHS = [
  '/api/integrate/audience/group/rel/batchAdd',
  '/api/open/audience/group/rel/batchAdd',
];
export const TOKEN_PATH = '/api/open/app/getOrgAccessToken';
export type { SimulatorStats } from './stats.js';

export interface SimulatorOptions {
  host?: string;
  /** 0 = an ephemeral port. */
  port?: number;
  /** A static X-Token accepted forever. */
  token?: string;
  appId?: string;
  appSecret?: string;
  registry?: RegistryEntry[];
  tokenTtlSeconds?: number;
  logger?: Logger;
  /** The sustained quota at start (fault `rateLimit`). */
  rateLimit?: number;
  /** Random source for the rate faults; injectable for tests. */
  random?: () => number;
  /**
   * Called (in-process) for every batchAdd request that passed auth and validation, with the time
   * its body had been read: the benchmark measures commit-to-platform latency with it.
   */
  onRows?: (optType: OptType, rows: readonly ApiRow[], receivedAtMs: number) => void;
  /** Called (in-process) as a 429 is answered, with the time and its Retry-After (tests). */
  onRefused?: (answeredAtMs: number, retryAfterSeconds: number) => void;
}

export interface Simulator {
  url: string;
  close(): Promise<void>;
  groupsOf(field: IdentityField, value: string): string[] | undefined;
  stats(): SimulatorStats;
  setFaults(f: Partial<Faults>): void;
  /** Requests that touched a customer while another request about it was being answered. */
  overlaps(): Overlaps;
  /** Forgets groups, stats and faults; the registry and issued tokens stay. */
  reset(): void;
}

const reply = sendJson;

function platform(code: string, errorCode: string, msg: string, data: unknown = null) {
  return { code, errorCode, msg, data };
}

/** Starts the simulator; resolves once it listens. */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const model = new PlatformModel(opts.registry ?? []);
  const random = opts.random ?? Math.random;
  const tokens = new Tokens({
    token: opts.token,
    appId: opts.appId,
    appSecret: opts.appSecret,
    ttlSeconds: opts.tokenTtlSeconds,
  });
  const pendingApply = new Set<NodeJS.Timeout>();
  const inFlight = new InFlight();
  const held = new Set<() => void>();
  const letGo = (): void => {
    for (const go of held) go();
    held.clear();
  };
  let faults: Faults = { ...DEFAULT_FAULTS, rateLimit: opts.rateLimit ?? 0 };
  const quota = new Quota();
  let stats = emptyStats();
  const log = opts.logger;

  function issueToken(res: ServerResponse, query: URLSearchParams): void {
    const issued = tokens.issue(query);
    if (!issued.ok) {
      stats.tokenRefusals += 1;
      return reply(
        res,
        200,
        platform('100100', 'APPID_OR_SECRET_ERROR', 'wrong instanceAppid or instanceSecrect'),
      );
    }
    stats.tokenFetches += 1;
    const { ok: _ok, ...data } = issued;
    reply(res, 200, platform('200', 'SUCCESS', 'ok', data));
  }

  function processRows(params: PublicParams, rows: ApiRow[]) {
    const resolved = rows.map((row) => model.resolve(params, row));
    const errorData: Array<ApiRow & { errorMsg: string }> = [];
    resolved.forEach((r, i) => {
      if (!r.ok) errorData.push({ ...(rows[i] as ApiRow), errorMsg: r.error });
    });
    const apply = () =>
      resolved.forEach((r, i) => {
        if (r.ok) model.apply(r.customer, params.optType, rows[i]?.groups);
      });
    return { errorData, apply };
  }

  async function batchAdd(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.requests += 1;
    const text = await readBody(req);
    const leave = inFlight.enterBody(text);
    try {
      await answer(req, res, text);
    } finally {
      leave();
    }
  }

  async function answer(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    const receivedAtMs = Date.now();
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    if (faults.holdAnswers) await new Promise<void>((go) => held.add(go));
    if (faults.status429 > 0) {
      faults.status429 -= 1;
      stats.served429 += 1;
      const seconds = String(faults.retryAfterSeconds);
      opts.onRefused?.(Date.now(), faults.retryAfterSeconds);
      return reply(res, 429, platform('429', 'TOO_MANY_REQUESTS', 'rate limited'), {
        'retry-after': seconds,
      });
    }
    const within = quota.take(faults.rateLimit, Date.now());
    if (!within.ok) {
      stats.served429 += 1;
      stats.quotaRefused += 1;
      opts.onRefused?.(Date.now(), within.retryAfterSeconds);
      return reply(res, 429, platform('429', 'TOO_MANY_REQUESTS', 'rate limit exceeded'), {
        'retry-after': String(within.retryAfterSeconds),
      });
    }
    if (faults.errorRate > 0 && random() < faults.errorRate) {
      stats.served500 += 1;
      return reply(res, 500, platform('500', 'SYSTEM_ERROR', 'internal error (simulated)'));
    }
    const hang = faults.timeoutRate > 0 && random() < faults.timeoutRate;
    if (hang && !faults.timeoutApplies) {
      stats.timeouts += 1;
      return; // never answered: the client's timeout fires and it closes the socket
    }
    const token = req.headers['x-token'];
    if (!tokens.valid(Array.isArray(token) ? token[0] : token)) {
      stats.authFailures += 1;
      return reply(
        res,
        faults.tokenErrorAs401 ? 401 : 200,
        platform('100200', 'TOKEN_INVALID', 'token invalid or expired'),
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      stats.rejected += 1;
      return reply(res, 400, platform('400', 'PARAM_ERROR', 'body is not valid JSON'));
    }
    const v = validateBatchAdd(body);
    if (!v.ok) {
      stats.rejected += 1;
      log?.debug({ msg: v.msg }, 'simulator rejected a request');
      return reply(res, 400, platform('400', 'PARAM_ERROR', v.msg));
    }
    const { params, rows } = v;
    if (carriesRejected(faults, rows)) {
      stats.rejected += 1;
      return reply(res, 400, platform('400', 'PARAM_ERROR', `data: a row could not be parsed (simulated)`));
    }
    opts.onRows?.(params.optType, rows, receivedAtMs);
    const { errorData, apply } = processRows(params, rows);
    const opt = stats.byOptType[params.optType];
    opt.requests += 1;
    opt.rows += rows.length;
    if (faults.asyncStatus) {
      const timer = setTimeout(() => {
        pendingApply.delete(timer);
        apply();
      }, faults.asyncDelayMs);
      pendingApply.add(timer);
      opt.accepted += rows.length;
      return reply(
        res,
        200,
        platform('200', 'SUCCESS', 'ok', {
          status: 0,
          message: '导入中',
          importSuccessNum: 0,
          importFailNum: 0,
          errorData: null,
        }),
      );
    }
    apply();
    const failNum = errorData.length;
    opt.failed += failNum;
    opt.synced += rows.length - failNum;
    if (hang) {
      stats.timeouts += 1;
      return; // applied, but the answer is lost
    }
    if (faults.applyThenFailRate > 0 && random() < faults.applyThenFailRate) {
      stats.appliedThenFailed += 1;
      return reply(
        res,
        503,
        platform('503', 'SYSTEM_BUSY', 'service unavailable (simulated, after applying)'),
      );
    }
    const status = failNum === 0 ? 1 : failNum === rows.length ? -1 : 2;
    const message = status === 1 ? '成功' : status === 2 ? '部分导入成功' : '导入失败';
    reply(
      res,
      200,
      platform('200', 'SUCCESS', 'ok', {
        status,
        message,
        importSuccessNum: rows.length - failNum,
        importFailNum: failNum,
        errorData: failNum === 0 ? null : errorData,
      }),
    );
  }

  async function control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method === 'GET' && url.pathname === '/__sim/groups') {
      for (const f of IDENTITY_FIELDS) {
        const value = url.searchParams.get(f);
        if (value === null) continue;
        const groups = model.groupsOf(f, value);
        return groups === undefined
          ? reply(res, 404, { error: `no customer state for ${f}` })
          : reply(res, 200, { groups });
      }
      return reply(res, 400, { error: `give one of ${IDENTITY_FIELDS.join(', ')}` });
    }
    if (req.method === 'GET' && url.pathname === '/__sim/stats') return reply(res, 200, sim.stats());
    if (req.method === 'POST' && url.pathname === '/__sim/reset') {
      sim.reset();
      return reply(res, 200, { ok: true });
    }
    if (req.method === 'POST' && url.pathname === '/__sim/faults') {
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        return reply(res, 400, { error: 'body is not valid JSON' });
      }
      const problem = checkFaults(body);
      if (problem !== undefined) return reply(res, 400, { error: problem });
      sim.setFaults(body as Partial<Faults>);
      return reply(res, 200, { faults });
    }
    return reply(res, 404, { error: 'unknown simulator endpoint' });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator');
    if (url.pathname.startsWith('/__sim/')) return control(req, res, url);
    if (BATCH_ADD_PATHS.includes(url.pathname)) {
      if (req.method !== 'POST') return reply(res, 405, platform('405', 'METHOD_NOT_ALLOWED', 'use POST'));
      return batchAdd(req, res);
    }
    if (url.pathname === TOKEN_PATH && req.method === 'GET') {
      if (faults.latencyMs > 0) await sleep(faults.latencyMs);
      return issueToken(res, url.searchParams);
    }
    return reply(res, 404, platform('404', 'NOT_FOUND', 'no such endpoint'));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log?.error({ err: err instanceof Error ? err.message : String(err) }, 'simulator failed to answer');
      if (!res.headersSent) reply(res, 500, platform('500', 'SYSTEM_ERROR', 'simulator error'));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  const url = await listen(server, opts.port ?? 0, opts.host ?? '127.0.0.1');

  const sim: Simulator = {
    url,
    async close() {
      letGo();
      for (const t of pendingApply) clearTimeout(t);
      pendingApply.clear();
      // Held (timed-out) sockets and idle keep-alive connections end too.
      await close(server).catch(() => {});
    },
    groupsOf: (field, value) => model.groupsOf(field, value),
    stats: () => ({ ...structuredClone(stats), customersWithState: model.customersWithState }),
    overlaps: () => inFlight.seen(),
    setFaults(f) {
      const { expireTokens, ...rest } = f;
      if (expireTokens) tokens.expireAll();
      faults = { ...faults, ...rest };
      if (!faults.holdAnswers) letGo();
    },
    reset() {
      for (const t of pendingApply) clearTimeout(t);
      pendingApply.clear();
      model.clear();
      inFlight.reset();
      stats = emptyStats();
      faults = { ...DEFAULT_FAULTS };
      letGo();
    },
  };
  log?.info({ url: sim.url }, 'platform simulator listening');
  return sim;
}
