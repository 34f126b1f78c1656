/**
 * Who may use the web console, decided per request from its headers alone (no I/O, no state).
 *
 * - The token (`http.token`, required by config validation beyond loopback): every API call and
 *   action carries it as `Authorization: Bearer`, compared in constant time (../auth.ts, as
 *   /metrics). The page keeps it in sessionStorage, so a browser never sends it by itself: no
 *   cookie, hence nothing a cross-site request could ride on.
 * - Without a token (loopback only) the Host header must name a loopback address: a page on another
 *   site that makes its own name resolve to 127.0.0.1 (DNS rebinding) would otherwise be same-origin
 *   with the console.
 * - Cross-site requests are refused on the API, and actions must be POSTs of JSON from the console's
 *   own origin: `Sec-Fetch-Site` (sent by browsers) must be same-origin where present, and `Origin`,
 *   where present, must be this host. A JSON body cannot be sent cross-origin without a CORS
 *   preflight, which this server never answers.
 */
import type http from 'node:http';
import { hasToken, TOKEN_CHALLENGE } from '../auth.js';

export interface Refusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Whether a Host header's name is a loopback address or `localhost`. */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  let name: string;
  try {
    name = new URL(`http://${host}`).hostname;
  } catch {
    return false;
  }
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/**
 * Why this request to the console must be refused, or undefined. `api`: the JSON API (data and
 * actions), as opposed to the page's static files, which carry no data.
 */
export function refusal(
  req: http.IncomingMessage,
  options: { token: string | undefined; api: boolean; action: boolean },
): Refusal | undefined {
  const h = req.headers;
  if (options.token === undefined && !isLoopbackHostHeader(h.host))
    return {
      status: 403,
      message:
        'the console answers only to a loopback host name without http.token (set one to use it by name)',
    };
  if (!options.api) return undefined;
  const site = h['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    return { status: 403, message: `cross-site request refused (Sec-Fetch-Site: ${site})` };
  if (h.origin !== undefined && !sameOrigin(h.origin, h.host))
    return { status: 403, message: 'cross-origin request refused (Origin is not this console)' };
  if (options.token !== undefined && !hasToken(req, options.token))
    return {
      status: 401,
      message: 'a token is required (http.token), as Authorization: Bearer <token>',
      headers: { ...TOKEN_CHALLENGE },
    };
  if (options.action) {
    if (req.method !== 'POST')
      return { status: 405, message: 'actions need POST', headers: { Allow: 'POST' } };
    const type = (h['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') return { status: 415, message: 'actions take a JSON body' };
  } else if (req.method !== 'GET' && req.method !== 'HEAD') {
    return { status: 405, message: 'method not allowed', headers: { Allow: 'GET, HEAD' } };
  }
  return undefined;
}

/** Whether an Origin header names the host the request was sent to (any scheme: a TLS proxy). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (!host || origin === 'null') return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

/**
 * Headers on every console response: nothing runs but the console's own script, nothing frames
 * it, nothing is cached, nothing leaks in a Referer.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};
