/**
 * The web console (docs/design.md, "Interfaces"; docs/console.md): a page for the people who ask "did customer X
 * reach the platform, and why not?", served on `http.listen` beside /metrics. A few static files
 * served as they are (a page, a stylesheet, small ES modules; no build step), and a JSON API under
 * /console/api/ that reads the status schema on a pool of its own (two connections, a statement
 * timeout), so a slow page can never hold up the bridge's own writes.
 *
 * Actions (retry a failure group, start a backfill, approve or reject held rows) are POSTs of JSON;
 * who may do what is decided in ./security.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../../config/types.js';
import { errorMessage } from '../../errors.js';
import { BodyTooLarge, readBody, send as sendBody } from '../../util/http.js';
import { pgClientConfig } from '../../util/pg-connection.js';
import type { Metrics } from '../metrics.js';
import type { Readiness } from '../readiness.js';
import { redactText } from '../redact.js';
import { ConsoleData, decodeGroup, type GroupId } from './data.js';
import { ConsoleOverview } from './overview.js';
import { ActionBusy, ConsoleActions } from './actions.js';
import { learnedRate } from './request-rate.js';
import { refusal, SECURITY_HEADERS } from './security.js';

/** What a retry of a group reports back (the `retry-failed` result of its source). */
export interface RetryReport {
  rows: number;
  outcomes: Record<string, number>;
  stillFailed: Array<{ rowKey: unknown; error: string | null }>;
}

export interface ConsoleOptions {
  config: Config;
  logger: Logger;
  metrics?: Metrics;
  readiness?: () => Readiness;
  /** Retries the failed rows of one group; the daemon passes `retry-failed`'s own path. */
  retry?: (group: { source: string; error: string | null }) => Promise<RetryReport>;
  /** Approves or rejects a source's held rows; the daemon passes `tuzhan-cdc held`'s own path. */
  settleHeld?: (action: 'approve' | 'reject', source: string) => Promise<unknown>;
  /** A pool to read with, instead of one opened from the config (tests). */
  pool?: pg.Pool;
}

export interface WebConsole {
  /** Answers the request when it is the console's (`/`, `/console...`); false when it is not. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean>;
  close(): Promise<void>;
}

/** Statement timeout of the console's connections: a page must never run a long query. */
export const CONSOLE_STATEMENT_TIMEOUT_MS = 5000;
const MAX_BODY = 16 * 1024;

/** The page's files, served as they are (the scripts are ES modules importing one another). */
const STATIC: Record<string, { file: string; type: string }> = {
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  ...Object.fromEntries(
    ['app', 'api', 'dom', 'chart', 'health', 'held', 'overview', 'find', 'failures'].map((m) => [
      `/console/${m}.js`,
      { file: `${m}.js`, type: 'text/javascript; charset=utf-8' },
    ]),
  ),
};

/**
 * Where the page's files are: beside this module in the sources (tsx, vitest), and under the
 * package's `src/ops/console/static` when running compiled from dist/ (package.json publishes it).
 */
function staticDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    for (const candidate of [join(dir, 'static'), join(dir, 'src', 'ops', 'console', 'static')])
      if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(dir) === dir)
      throw new Error(`the console's static files are missing (looked above ${here})`);
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Creates the console; its pool connects on the first API call. */
export function createConsole(o: ConsoleOptions): WebConsole {
  const dir = staticDir();
  const files = new Map(
    Object.entries(STATIC).map(([path, f]) => [
      path,
      { type: f.type, body: readFileSync(join(dir, f.file)) },
    ]),
  );
  const ownPool = o.pool === undefined;
  const pool =
    o.pool ??
    new pg.Pool({
      ...pgClientConfig(o.config.postgres, 'tuzhan-cdc console', {
        statement_timeout: CONSOLE_STATEMENT_TIMEOUT_MS,
        connectionTimeoutMillis: 5000,
      }),
      max: 2,
      idleTimeoutMillis: 10_000,
    });
  // An idle connection the server ended (a restart) must not crash the daemon.
  pool.on('error', (err) => o.logger.debug({ err }, 'console connection lost'));
  const sources = { pool, config: o.config, metrics: o.metrics, readiness: o.readiness };
  const data = new ConsoleData(sources);
  const overview = new ConsoleOverview(sources);
  const token = o.config.http.token;
  const sourceNames = new Set(o.config.sources.map((s) => s.name));
  const actions = new ConsoleActions(o.logger);

  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, extra = {}) =>
    sendBody(res, status, type, body, { ...SECURITY_HEADERS, ...extra });
  const json = (res: http.ServerResponse, status: number, body: unknown, extra = {}) =>
    send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, extra);

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    if (path !== '/' && path !== '/console' && !path.startsWith('/console/')) return false;
    const api = path.startsWith('/console/api/');
    const action = api && ['/console/api/retry', '/console/api/backfill', '/console/api/held'].includes(path);
    const refused = refusal(req, { token, api, action });
    if (refused) {
      json(res, refused.status, { error: refused.message }, refused.headers);
      return true;
    }
    if (!api) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: 'GET, HEAD' });
        return true;
      }
      const file = files.get(path);
      if (file) send(res, 200, file.type, file.body);
      else if (path === '/' || path === '/console')
        send(res, 302, 'text/plain; charset=utf-8', '', { Location: '/console/' });
      else send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
      return true;
    }
    try {
      const out = await route(req, path, url.searchParams);
      json(res, out.status ?? 200, out.body);
    } catch (err) {
      const { status, message } = describe(err);
      if (status >= 500 && status !== 503) o.logger.error({ err, path }, 'console request failed');
      json(res, status, { error: message });
    }
    return true;
  }

  async function route(
    req: http.IncomingMessage,
    path: string,
    q: URLSearchParams,
  ): Promise<{ status?: number; body: unknown }> {
    switch (path) {
      case '/console/api/health': // the header's pill on every page, without the overview's queries
        return {
          body: {
            generatedAt: new Date().toISOString(),
            ...(o.readiness?.() ?? { ready: null }),
            ...(o.metrics ? { requestRate: await learnedRate(o.metrics) } : {}),
          },
        };
      case '/console/api/overview':
        return { body: { ...(await overview.read()), actions: actions.newest(5) } };
      case '/console/api/search': {
        const text = (q.get('q') ?? '').trim();
        if (text.length === 0 || text.length > 200)
          throw new HttpError(400, 'q: a key, a key as JSON, or an identity value (1 to 200 characters)');
        return { body: await data.search(text, source(q.get('source')), int(q, 'limit', 20, 1, 100)) };
      }
      case '/console/api/failures': {
        const status = q.get('status') || undefined;
        if (status !== undefined && status !== 'failed' && status !== 'retrying')
          throw new HttpError(400, 'status: failed or retrying');
        return {
          body: await data.failureGroups({
            status,
            source: source(q.get('source')),
            limit: int(q, 'limit', 20, 1, 100),
            offset: int(q, 'offset', 0, 0, 10_000),
          }),
        };
      }
      case '/console/api/failures/rows': {
        const group = decodeGroup(q.get('group') ?? '');
        if (!group) throw new HttpError(400, 'group: the id of a group from /console/api/failures');
        return {
          body: await data.groupRows(group, q.get('after') || undefined, int(q, 'limit', 20, 1, 100)),
        };
      }
      case '/console/api/actions':
        return { body: { actions: actions.newest() } };
      case '/console/api/retry': {
        const body = await readJson(req);
        const group = decodeGroup(typeof body.group === 'string' ? body.group : '');
        if (!group || !sourceNames.has(group.source))
          throw new HttpError(400, 'group: the id of a failure group of a configured source');
        if (group.status !== 'failed')
          throw new HttpError(
            409,
            'the bridge retries these rows by itself; only failed rows are retried from here',
          );
        return { status: 202, body: { action: startRetry(group) } };
      }
      case '/console/api/held': {
        const body = await readJson(req);
        const name = typeof body.source === 'string' ? source(body.source) : undefined;
        if (!name) throw new HttpError(400, 'source: the name of a configured source');
        if (body.action !== 'approve' && body.action !== 'reject')
          throw new HttpError(400, 'action: approve or reject');
        const settle = o.settleHeld;
        if (!settle) throw new HttpError(501, 'held rows cannot be settled from this process');
        const kind = body.action;
        o.logger.info({ source: name, action: kind }, 'console: settling held rows');
        return { status: 202, body: { action: begin({ kind, source: name }, () => settle(kind, name)) } };
      }
      case '/console/api/backfill': {
        const body = await readJson(req);
        const name = typeof body.source === 'string' ? source(body.source) : undefined;
        if (!name) throw new HttpError(400, 'source: the name of a configured source');
        const a = actions.record({ kind: 'backfill', source: name });
        try {
          const r = await data.requestBackfill(name);
          actions.end(a, { result: { backfillId: r.id, created: r.created } });
          o.logger.info({ source: name, backfill: r.id, created: r.created }, 'console: backfill requested');
          return { status: r.created ? 201 : 200, body: { action: a } };
        } catch (err) {
          actions.end(a, { failed: describe(err).message });
          throw err;
        }
      }
      default:
        throw new HttpError(404, 'no such API (see docs/console.md)');
    }
  }

  /** Starts background work as an action (one of a kind at a time: 409 otherwise). */
  function begin(a: Parameters<ConsoleActions['start']>[0], work: () => Promise<unknown>) {
    try {
      return actions.start(a, work);
    } catch (err) {
      throw err instanceof ActionBusy ? new HttpError(409, err.message) : err;
    }
  }

  /** Starts the retry of a group in the background; the page polls its state. */
  function startRetry(group: GroupId) {
    const retry = o.retry;
    if (!retry) throw new HttpError(501, 'retrying is not available in this process');
    o.logger.info({ source: group.source, error: group.error }, 'console: retrying a failure group');
    return begin({ kind: 'retry', source: group.source, error: group.error }, () =>
      retry({ source: group.source, error: group.error }),
    );
  }

  function source(name: string | null | undefined): string | undefined {
    if (name === null || name === undefined || name === '') return undefined;
    if (!sourceNames.has(name)) throw new HttpError(400, `source: not a configured source`);
    return name;
  }

  return {
    handle,
    async close() {
      if (ownPool) await pool.end().catch(() => {});
    },
  };
}

/** An integer query parameter within bounds, or its default. */
function int(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = q.get(name);
  if (text === null || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new HttpError(400, `${name}: an integer from ${min} to ${max}`);
  return n;
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const text = await readBody(req, MAX_BODY).catch((err: unknown) => {
    throw err instanceof BodyTooLarge ? new HttpError(413, 'the body is too large') : err;
  });
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new HttpError(400, 'the body must be a JSON object');
}

/** The answer for an error: the API's own, a missing status schema, a slow or lost database. */
function describe(err: unknown): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  if (err instanceof RangeError) return { status: 400, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code === '42P01' || code === '3F000')
    return { status: 503, message: 'the bridge has not created its status schema yet' };
  if (code === '57014')
    return {
      status: 503,
      message: `the query took longer than ${CONSOLE_STATEMENT_TIMEOUT_MS / 1000} s and was cancelled`,
    };
  if (typeof code === 'string' && /^(08|57P|E[A-Z]+$)/.test(code))
    return { status: 503, message: `the database is unavailable: ${redactText(errorMessage(err))}` };
  return { status: 500, message: 'internal error (see the bridge log)' };
}
