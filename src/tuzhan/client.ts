/**
 * The platform's client over one transport (src/tuzhan/transport.ts): `sendOnce` (one request, plus one token
 * refresh and retry on 100200/401) and `send` (retries transient and auth failures forever, docs/design.md,
 * "Errors"). Whole-batch rejections are rethrown: the caller bisects.
 */
import type { Logger } from 'pino';
import { keyWithOrigin } from '../config/origins.js';
import type { Config } from '../config/types.js';
import { ApiAuthError, ApiRejectedError, ApiUnavailableError, BridgeError, errorMessage } from '../errors.js';
import { RETRY, retry } from '../util/retry.js';
import { MAX_ROWS_PER_REQUEST, buildBody, hasIdentity, outcomesOf, redact } from './outcomes.js';
import { TokenManager } from './token-manager.js';
import { Gate } from './gate.js';
import { RequestAbortedError, Transport } from './transport.js';
import type { ApiRow, PublicParams, RowOutcome } from './types.js';

/** What one request achieved; `outcomes` is index-aligned with the rows given to `sendOnce`. */
export interface BatchResult {
  httpStatus: number;
  code: string;
  msg: string;
  apiStatus: number | null;
  successNum: number;
  failNum: number;
  outcomes: RowOutcome[];
  durationMs: number;
}

export interface RetryInfo {
  attempt: number;
  error: BridgeError;
  delayMs: number;
}

export interface SendOptions {
  signal?: AbortSignal;
  onRetry?: (info: RetryInfo) => void | Promise<void>;
}

export interface TuzhanClientOptions {
  logger: Logger;
  /** Backoff of transient failures (default 200 ms .. 30 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Backoff of auth failures, which need an operator (default 1 s .. 60 s). */
  authRetryBaseMs?: number;
  authRetryMaxMs?: number;
  /** Upper bound for an honoured Retry-After (default 5 min). */
  retryAfterMaxMs?: number;
}

export { RequestAbortedError } from './transport.js';

/** The outcome of a row sent without an identity (one object for all: outcomes are never changed). */
const NO_IDENTITY: RowOutcome = Object.freeze({
  status: 'failed',
  error: 'row has no identity value (thirdId, openid, unionid or phone)',
});

/** The client's part of the config (readiness is not its business). */
type TuzhanConfig = Omit<Config['tuzhan'], 'notReadyAfterMs'>;

export class TuzhanClient {
  /** The HTTP side; its `limiter` paces every request by what the platform's answers taught it. */
  readonly transport: Transport;
  /** Set while the platform refuses the credentials: the request that probes them, and its waiters. */
  private refused: Gate | undefined;
  private readonly tokens: TokenManager;
  /** The credentials' keys and where their values came from, for messages (never the values). */
  private readonly credentialsLabel: string;
  private readonly basePath: string;
  private readonly logger: Logger;

  constructor(
    private readonly config: TuzhanConfig,
    private readonly options: TuzhanClientOptions,
  ) {
    this.logger = options.logger;
    this.transport = new Transport({ ...config, clean: (text) => this.clean(text) });
    this.basePath = this.transport.basePath;
    const app = config.token === undefined && config.appId !== undefined;
    this.credentialsLabel = app
      ? `${keyWithOrigin(config, 'tuzhan.appId')}/${keyWithOrigin(config, 'tuzhan.appSecret')}`
      : keyWithOrigin(config, 'tuzhan.token');
    this.tokens = new TokenManager({
      keyLabel: this.credentialsLabel,
      token: config.token,
      appId: config.appId,
      appSecret: config.appSecret,
      basePath: this.basePath,
      timeoutMs: config.timeoutMs,
      dispatcher: this.transport.pool,
      logger: this.logger,
    });
  }

  /**
   * The config key an operator must fix when the platform refuses the credentials, with where its
   * value came from: `tuzhan.token (from TUZHAN_TOKEN)`.
   */
  get credentialsKey(): string {
    return this.credentialsLabel;
  }

  /**
   * One request (plus, with app credentials, one token refresh and retry on 100200/401).
   * Resolves with per-row outcomes; throws ApiUnavailableError, ApiAuthError or ApiRejectedError.
   */
  async sendOnce(
    params: PublicParams,
    rows: ApiRow[],
    opts: { signal?: AbortSignal } = {},
  ): Promise<BatchResult> {
    const started = performance.now();
    try {
      return await this.attempt(params, rows, opts, started);
    } catch (err) {
      // A failed try took time too (a timeout takes timeoutMs): the latency metrics must show it.
      if (
        err instanceof ApiUnavailableError ||
        err instanceof ApiAuthError ||
        err instanceof ApiRejectedError
      )
        err.durationMs ??= Math.round(performance.now() - started);
      throw err;
    }
  }

  private async attempt(
    params: PublicParams,
    rows: ApiRow[],
    opts: { signal?: AbortSignal },
    started: number,
  ): Promise<BatchResult> {
    if (rows.length < 1 || rows.length > MAX_ROWS_PER_REQUEST)
      throw new BridgeError(
        'BATCH_SIZE',
        `a request carries 1..${MAX_ROWS_PER_REQUEST} rows, got ${rows.length}`,
      );
    const body = buildBody(params, rows);
    // A row without any identity would be rejected with the whole batch: fail it here, send the rest.
    const sendable: number[] = [];
    for (let i = 0; i < body.data.length; i++) if (hasIdentity(body.data[i] as ApiRow)) sendable.push(i);
    const outcomes = new Array<RowOutcome>(body.data.length).fill(NO_IDENTITY);
    if (sendable.length === 0) {
      return {
        httpStatus: 0,
        code: 'LOCAL',
        msg: 'no row to send',
        apiStatus: null,
        successNum: 0,
        failNum: rows.length,
        outcomes,
        durationMs: 0,
      };
    }
    const sent = sendable.length < rows.length ? sendable.map((i) => body.data[i] as ApiRow) : body.data;
    const payload = JSON.stringify({ publicParams: body.publicParams, data: sent });

    let token = await this.tokens.get();
    let answer = await this.transport.post(payload, token, opts.signal);
    if (answer.cls.kind === 'token-expired' && this.tokens.refreshable) {
      this.logger.info(
        { reason: answer.cls.reason },
        'platform refused the access token; fetching a new one',
      );
      token = await this.tokens.refresh(token);
      answer = await this.transport.post(payload, token, opts.signal);
    }
    const { cls, httpStatus, body: res } = answer;
    const code = res?.code === undefined ? '' : String(res.code);
    const msg = this.clean(res?.msg ?? '');
    switch (cls.kind) {
      case 'unavailable':
        throw new ApiUnavailableError(
          `platform unavailable: ${this.clean(cls.reason)}`,
          httpStatus,
          cls.retryAfterMs,
        );
      case 'token-expired':
      case 'auth':
        throw new ApiAuthError(
          `platform refused the credentials (${this.clean(cls.reason)}); check ${this.credentialsLabel}`,
          this.tokens.configKey,
          cls.kind === 'token-expired' && this.tokens.refreshable,
          httpStatus,
          code || undefined,
        );
      case 'rejected':
        throw new ApiRejectedError(
          `platform rejected the batch (${this.clean(cls.reason)})`,
          httpStatus,
          code || undefined,
        );
      case 'result': {
        const data = cls.data ?? { status: cls.apiStatus ?? -1 };
        const sentOutcomes = outcomesOf(sent, cls.apiStatus ?? -1, data, msg, this.logger);
        sendable.forEach((rowIndex, k) => {
          outcomes[rowIndex] = sentOutcomes[k] as RowOutcome;
        });
        // Counts as the platform reports them for the sent rows, plus the rows failed locally.
        const local = rows.length - sent.length;
        const failed = sentOutcomes.filter((o) => o.status === 'failed').length;
        return {
          httpStatus,
          code,
          msg,
          apiStatus: cls.apiStatus,
          successNum: Number(data.importSuccessNum ?? sent.length - failed),
          failNum: Number(data.importFailNum ?? failed) + local,
          outcomes,
          durationMs: Math.round(performance.now() - started),
        };
      }
    }
  }

  /**
   * `sendOnce` until it gets an answer about the rows: transient failures are retried forever
   * (backoff with jitter, Retry-After honoured), auth failures too but slowly, with one error log
   * naming the config key per streak. ApiRejectedError is rethrown; an aborted signal stops it.
   */
  async send(params: PublicParams, rows: ApiRow[], opts: SendOptions = {}): Promise<BatchResult> {
    const { signal, onRetry } = opts;
    const o = this.options;
    // The policy table's, unless a test asks for faster retries.
    const transient = {
      ...RETRY.platform,
      baseMs: o.retryBaseMs ?? RETRY.platform.baseMs,
      maxMs: o.retryMaxMs ?? RETRY.platform.maxMs,
    };
    const auth = {
      ...RETRY.platformAuth,
      baseMs: o.authRetryBaseMs ?? RETRY.platformAuth.baseMs,
      maxMs: o.authRetryMaxMs ?? RETRY.platformAuth.maxMs,
    };
    const me = Symbol('request');
    let answered = false;
    try {
      const result = await retry(
        async () => {
          // While the platform refuses the credentials, one request tries them and the rest wait:
          // sending stops (docs/design.md, "Errors"), and the refusal is logged once, not once per request.
          for (let gate = this.refused; gate && gate.owner !== me; gate = this.refused)
            await gate.opened(signal);
          return this.sendOnce(params, rows, { signal });
        },
        {
          policy: (err) =>
            err instanceof ApiUnavailableError ? transient : err instanceof ApiAuthError ? auth : undefined,
          signal,
          onAbort: () => new RequestAbortedError(),
          minDelayMs: (err) =>
            err instanceof ApiUnavailableError && err.retryAfterMs !== undefined
              ? Math.min(err.retryAfterMs, o.retryAfterMaxMs ?? 300_000)
              : undefined,
          onRetry: async ({ attempt, error, delayMs }) => {
            const err = error as ApiUnavailableError | ApiAuthError;
            if (err instanceof ApiUnavailableError) {
              // A quota's 429 is the limiter's business (it paces, and logs what it learns).
              this.logger[err.httpStatus === 429 ? 'debug' : 'warn'](
                { attempt, delayMs, httpStatus: err.httpStatus, rows: rows.length, err: err.message },
                'platform unavailable; retrying',
              );
            } else if (!this.refused) {
              this.refused = new Gate(me);
              this.logger.error(
                { configKey: err.configKey, httpStatus: err.httpStatus, code: err.apiCode, err: err.message },
                `the platform refuses the credentials: fix ${this.credentialsLabel}; sending is paused and retried`,
              );
            }
            await onRetry?.({ attempt, error: err, delayMs });
          },
        },
      );
      answered = true;
      return result;
    } catch (err) {
      // A whole-batch rejection is an answer about the data: the credentials were accepted.
      if (err instanceof ApiRejectedError) answered = true;
      throw err;
    } finally {
      if (this.refused?.owner === me) {
        // Accepted again, or this request gave up (a stop): the others go on (one probes next).
        this.refused.open();
        this.refused = undefined;
        if (answered)
          this.logger.info({ configKey: this.tokens.configKey }, 'platform accepts the credentials again');
      }
    }
  }

  /**
   * Whether the platform is reachable and takes the credentials, without changing any data: in app
   * mode a token is fetched first; then batchAdd is called with an empty `data`, which the platform
   * refuses. A token error means the credentials are refused; any other answer (a validation error,
   * or even a success that imports nothing) means the token is accepted.
   */
  async check(): Promise<{ reachable: boolean; tokenAccepted: boolean; detail: string }> {
    let token: string;
    try {
      token = await this.tokens.get();
    } catch (err) {
      if (err instanceof ApiAuthError)
        return { reachable: true, tokenAccepted: false, detail: this.clean(err.message) };
      return {
        reachable: false,
        tokenAccepted: false,
        detail: this.clean(errorMessage(err, { code: true })),
      };
    }
    const probe = JSON.stringify({ publicParams: { isMatching: false, optType: 'add' }, data: [] });
    try {
      const { cls, httpStatus } = await this.transport.post(probe, token, undefined);
      const base = `POST ${this.basePath}${this.config.batchAddPath} answered HTTP ${httpStatus}`;
      switch (cls.kind) {
        case 'token-expired':
        case 'auth':
          return {
            reachable: true,
            tokenAccepted: false,
            detail: `${base}: credentials refused (${this.clean(cls.reason)}); check ${this.credentialsLabel}`,
          };
        case 'unavailable':
          // A 404 is an answer (wrong path); 5xx/429 mean the platform cannot serve us right now.
          return {
            reachable: httpStatus === 404,
            tokenAccepted: false,
            detail: `${base}: ${this.clean(cls.reason)}`,
          };
        default:
          return { reachable: true, tokenAccepted: true, detail: `${base}: token accepted` };
      }
    } catch (err) {
      return {
        reachable: false,
        tokenAccepted: false,
        detail: this.clean(errorMessage(err, { code: true })),
      };
    }
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private clean(text: string): string {
    return redact(text, this.tokens.secrets());
  }
}
