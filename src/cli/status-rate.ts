/**
 * The request rate the running bridge learned from the platform's answers, for `tuzhan-cdc status`.
 * Everything else `status` shows is in the database; this only the daemon knows, so it is asked of
 * its HTTP endpoint (`http.listen`, with `http.token`), briefly: a bridge that is not running, or
 * runs elsewhere, is reported as such, and the rest of the report stands.
 */
import type { Config } from '../config/types.js';
import { errorMessage } from '../errors.js';
import type { LearnedRate } from '../ops/console/request-rate.js';

export type StatusRate = ({ from: string } & LearnedRate) | { from: string | null; error: string };

const ASK_TIMEOUT_MS = 2000;

/** Asks the running bridge (GET /console/api/health) what it learned. */
export async function readLearnedRate(config: Config): Promise<StatusRate> {
  const listen = config.http.listen;
  if (!listen) return { from: null, error: 'http.listen is "off": the running bridge cannot be asked' };
  // A bridge listening on every address is asked on this machine's loopback.
  const host =
    listen.host === '0.0.0.0'
      ? '127.0.0.1'
      : listen.host === '::'
        ? '[::1]'
        : listen.host.includes(':')
          ? `[${listen.host}]`
          : listen.host;
  const from = `http://${host}:${listen.port}`;
  try {
    const res = await fetch(`${from}/console/api/health`, {
      headers: config.http.token ? { authorization: `Bearer ${config.http.token}` } : {},
      signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
    });
    if (!res.ok)
      return {
        from,
        error: `it answered HTTP ${res.status}${res.status === 401 ? ' (check http.token)' : ''}`,
      };
    const body = (await res.json()) as { requestRate?: LearnedRate };
    if (!body.requestRate) return { from, error: 'it does not report a request rate (an older version)' };
    return { from, ...body.requestRate };
  } catch (err) {
    return { from, error: `no bridge answered (${errorMessage(err)})` };
  }
}

const perSecond = (n: number): string => `${n.toFixed(n < 10 ? 2 : 1)}/s`;

/** The line `status` prints. */
export function formatLearnedRate(r: StatusRate): string {
  if ('error' in r) return `requests  rate unknown: ${r.from ? `${r.from}: ` : ''}${r.error}`;
  const rate =
    r.ratePerSecond === null
      ? 'no limit (the platform refused nothing)'
      : `learned rate ${perSecond(r.ratePerSecond)}${r.quota === null ? '' : ` (platform quota about ${perSecond(r.quota)})`}`;
  return `requests  ${rate}, ${r.refused ?? 0} refused (429) since the bridge started, at most ${r.concurrency ?? '?'} in flight`;
}
