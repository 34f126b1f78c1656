/**
 * The operators' HTTP endpoint: /healthz, /readyz and /metrics on node:http, and the web console
 * (./console/) on the same address.
 * Bound to loopback by default (config `http.listen`); it serves no secrets, but metrics and
 * readiness are still nobody else's business.
 */
import http from 'node:http';
import type { Logger } from 'pino';
import { close, listen, send as sendBody } from '../util/http.js';
import { hasToken, TOKEN_CHALLENGE } from './auth.js';
import type { WebConsole } from './console/console.js';
import type { Metrics } from './metrics.js';
import type { Readiness } from './readiness.js';

export interface OpsServerOptions {
  listen: { host: string; port: number };
  metrics: Metrics;
  readiness: () => Readiness;
  logger: Logger;
  /** `http.token`: asked for as `Authorization: Bearer <token>` everywhere but /healthz and /readyz. */
  token?: string;
  /** The web console (`/` and `/console...`), which checks the token itself (console/security.ts). */
  console?: WebConsole;
}

export interface OpsServer {
  /** `http://host:port` with the port actually bound (port 0 asks for an ephemeral one). */
  url: string;
  close(): Promise<void>;
}

/** Starts the server; resolves once it listens, rejects when the address cannot be bound. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { metrics, readiness, logger } = options;

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      logger.error({ err, path: req.url }, 'ops endpoint failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (options.console && (await options.console.handle(req, res))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        const state = readiness();
        send(res, state.ready ? 200 : 503, 'application/json', `${JSON.stringify(state)}\n`);
        return;
      }
      case '/metrics': {
        if (options.token !== undefined && !hasToken(req, options.token)) {
          for (const [name, value] of Object.entries(TOKEN_CHALLENGE)) res.setHeader(name, value);
          send(res, 401, 'text/plain; charset=utf-8', 'a token is required (http.token)\n');
          return;
        }
        const { contentType, body } = await metrics.render();
        send(res, 200, contentType, body);
        return;
      }
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  }

  function send(res: http.ServerResponse, status: number, contentType: string, body: string): void {
    sendBody(res, status, contentType, body, { 'Cache-Control': 'no-store' });
  }

  const url = await listen(server, options.listen.port, options.listen.host);
  server.on('error', (err) => logger.error({ err }, 'ops server error'));
  logger.info({ url }, 'ops endpoint listening (/healthz, /readyz, /metrics)');

  // Prometheus keeps scrape connections alive: closing ends them.
  return { url, close: () => close(server) };
}
