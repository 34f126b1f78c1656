/**
 * The X-Token: either the static `tuzhan.token`, or an org access token fetched with
 * `tuzhan.appId`/`tuzhan.appSecret` from `GET /api/open/app/getOrgAccessToken` and renewed at 80%
 * of its life or when the platform answers 100200. One fetch is in flight at a time, shared by
 * every concurrent request (single flight), so 20 requests hitting an expired token cause one fetch.
 *
 * The orgRefreshToken is kept but not used: the vendor documents no refresh endpoint, and a new
 * fetch with the app credentials gives the same result.
 */
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { ApiAuthError, ApiUnavailableError, errorMessage } from '../errors.js';
import { redact } from './outcomes.js';

export const TOKEN_PATH = '/api/open/app/getOrgAccessToken';
export const APP_CONFIG_KEY = 'tuzhan.appId/tuzhan.appSecret';
export const TOKEN_CONFIG_KEY = 'tuzhan.token';
/** Renew when this share of the token's life has passed. */
const RENEW_AT = 0.8;

export interface TokenManagerOptions {
  /** The credentials' keys as messages name them (with where their values came from); default the keys. */
  keyLabel?: string;
  token?: string;
  appId?: string;
  appSecret?: string;
  /** Path prefix of baseUrl (usually ""). */
  basePath: string;
  timeoutMs: number;
  dispatcher: Dispatcher;
  logger: Logger;
  now?: () => number;
}

interface Held {
  token: string;
  refreshToken?: string;
  renewAt: number;
}

/**
 * `expire` as seconds of validity (the vendor's 7200), unless it clearly is an epoch timestamp
 * (seconds after 2001 or milliseconds); then the remaining life. Returns ms of validity.
 */
export function tokenLifeMs(expire: unknown, now: number): number {
  const n = Number(expire);
  if (!Number.isFinite(n) || n <= 0) return 7200 * 1000;
  if (n > 1e12) return Math.max(0, n - now);
  if (n > 1e9) return Math.max(0, n * 1000 - now);
  return n * 1000;
}

export class TokenManager {
  readonly refreshable: boolean;
  readonly configKey: string;
  private held: Held | undefined;
  private inflight: Promise<string> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: TokenManagerOptions) {
    this.refreshable = opts.appId !== undefined && opts.appSecret !== undefined && opts.token === undefined;
    if (!this.refreshable && opts.token === undefined) {
      throw new ApiAuthError(
        'no credentials: set tuzhan.token or tuzhan.appId + tuzhan.appSecret',
        TOKEN_CONFIG_KEY,
        false,
      );
    }
    this.configKey = this.refreshable ? APP_CONFIG_KEY : TOKEN_CONFIG_KEY;
    this.now = opts.now ?? Date.now;
  }

  /** Every secret this manager knows, for redaction. */
  secrets(): string[] {
    const s = [this.opts.token, this.opts.appSecret, this.held?.token, this.held?.refreshToken];
    return s.filter((x): x is string => x !== undefined);
  }

  /** A token to send: the static one, the held one while fresh, else a (shared) new fetch. */
  async get(): Promise<string> {
    if (!this.refreshable) return this.opts.token as string;
    if (this.held !== undefined && this.now() < this.held.renewAt) return this.held.token;
    return this.fetchShared();
  }

  /**
   * A new token after `rejected` was refused (100200/401). When another request already replaced
   * it, that newer token is returned without a fetch.
   */
  async refresh(rejected: string): Promise<string> {
    if (!this.refreshable) return this.opts.token as string;
    if (this.held !== undefined && this.held.token !== rejected) return this.held.token;
    return this.fetchShared();
  }

  private fetchShared(): Promise<string> {
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchToken(): Promise<string> {
    const { appId, appSecret, basePath, timeoutMs, dispatcher, logger } = this.opts;
    const query = new URLSearchParams({ instanceAppid: appId ?? '', instanceSecrect: appSecret ?? '' });
    const started = this.now();
    let status: number;
    let text: string;
    try {
      const res = await dispatcher.request({
        method: 'GET',
        path: `${basePath}${TOKEN_PATH}?${query.toString()}`,
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      // The URL carries the secret in its query: never let the raw error (or its cause) escape.
      const message = redact(
        `token endpoint unreachable: ${errorMessage(err, { code: true })}`,
        this.secrets(),
      );
      throw new ApiUnavailableError(message, undefined, undefined);
    }
    let body: { code?: unknown; msg?: unknown; data?: Record<string, unknown> | null } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    const code = body?.code === undefined ? undefined : String(body.code);
    const msg = redact(typeof body?.msg === 'string' ? body.msg : '', this.secrets());
    if (status === 429 || status === 408 || status === 425 || status >= 500 || body === undefined) {
      throw new ApiUnavailableError(
        `token endpoint answered HTTP ${status}${msg ? `: ${msg}` : ''}`,
        status,
        undefined,
      );
    }
    const token = body.data?.orgAccessToken;
    if (code !== '200' || typeof token !== 'string' || token === '') {
      throw new ApiAuthError(
        `token endpoint refused ${this.opts.keyLabel ?? APP_CONFIG_KEY} (HTTP ${status}, code ${code ?? 'none'}${msg ? `: ${msg}` : ''})`,
        APP_CONFIG_KEY,
        false,
        status,
        code,
      );
    }
    const now = this.now();
    const life = tokenLifeMs(body.data?.expire, now);
    const refreshToken = body.data?.orgRefreshToken;
    this.held = {
      token,
      refreshToken: typeof refreshToken === 'string' ? refreshToken : undefined,
      renewAt: now + life * RENEW_AT,
    };
    logger.info(
      { validForS: Math.round(life / 1000), durationMs: now - started },
      'obtained a platform access token',
    );
    return token;
  }
}
