/**
 * Who may read the operators' endpoints: `http.token`, sent as `Authorization: Bearer <token>`.
 * One check for /metrics (./ops-server.ts) and the web console's API (./console/security.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';

/** Whether the request carries the token; compared in constant time (digests of equal length). */
export function hasToken(req: http.IncomingMessage, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest((m[1] as string).trim()), digest(token));
}

/** The header a 401 carries: how to authenticate. */
export const TOKEN_CHALLENGE: Readonly<Record<string, string>> = { 'WWW-Authenticate': 'Bearer' };
