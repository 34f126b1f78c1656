/**
 * The HTTP side of the platform client: one keep-alive undici Pool, and the limiter (./limiter.ts)
 * that paces every attempt and bounds those in flight by what the platform's answers taught it.
 * One POST of batchAdd at a time, classified (src/tuzhan/outcomes.ts); network errors and timeouts
 * become ApiUnavailableError with a secret-free message.
 */
import { Pool } from 'undici';
import { ApiUnavailableError, BridgeError, errorMessage } from '../errors.js';
import { Limiter, type Feedback } from './limiter.js';
import { classifyResponse, parseRetryAfter, type Classification } from './outcomes.js';
import type { BatchAddResponse } from './types.js';

/** `send` stopped because its signal aborted. */
export class RequestAbortedError extends BridgeError {
  constructor() {
    super('ABORTED', 'request to the platform aborted');
  }
}

export interface TransportOptions {
  baseUrl: string;
  batchAddPath: string;
  timeoutMs: number;
  concurrency: number;
  ratePerSecond: number;
  /** Removes secrets from a message. */
  clean(text: string): string;
}

export interface Answer {
  httpStatus: number;
  body: BatchAddResponse | undefined;
  cls: Classification;
}

export class Transport {
  /** The undici dispatcher (the token manager shares it). */
  readonly pool: Pool;
  /** `/base` of `tuzhan.baseUrl`, without a trailing slash. */
  readonly basePath: string;
  /** Paces and bounds every attempt, whoever sends it. */
  readonly limiter: Limiter;

  constructor(private readonly o: TransportOptions) {
    const url = new URL(o.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: Math.max(1, o.concurrency),
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      keepAliveTimeout: 30_000,
    });
    this.limiter = new Limiter({
      ratePerSecond: o.ratePerSecond,
      concurrency: o.concurrency,
    });
  }

  async close(): Promise<void> {
    this.limiter.close(new RequestAbortedError());
    await this.pool.close();
  }

  /** One POST; network errors and timeouts become ApiUnavailableError with a secret-free message. */
  async post(payload: string, token: string, signal: AbortSignal | undefined): Promise<Answer> {
    const permit = await this.limiter.acquire(signal, () => new RequestAbortedError());
    let feedback: Feedback | undefined;
    try {
      const answer = await this.request(payload, token, signal);
      const { httpStatus, cls } = answer;
      const retryAfterMs = cls.kind === 'unavailable' ? cls.retryAfterMs : undefined;
      feedback =
        httpStatus === 429
          ? { kind: 'refused', retryAfterMs }
          : httpStatus >= 500 || httpStatus === 408
            ? { kind: 'failed', retryAfterMs }
            : { kind: 'answered', retryAfterMs };
      return answer;
    } catch (err) {
      // No answer: a timeout or a network error (an abort says nothing about the platform).
      if (err instanceof ApiUnavailableError) feedback = { kind: 'failed' };
      throw err;
    } finally {
      if (feedback) permit.done(feedback);
      else permit.cancel();
    }
  }

  private async request(payload: string, token: string, signal: AbortSignal | undefined): Promise<Answer> {
    // The timeout starts when the request leaves the limiter, not while it waits in it.
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    let httpStatus: number;
    let text: string;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await this.pool.request({
        method: 'POST',
        path: `${this.basePath}${this.o.batchAddPath}`,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'x-token': token },
        body: payload,
        signal: combined,
      });
      httpStatus = res.statusCode;
      retryAfter = res.headers['retry-after'];
      text = await res.body.text();
    } catch (err) {
      if (signal?.aborted) throw new RequestAbortedError();
      const why = timeout.aborted
        ? `no answer within ${this.o.timeoutMs} ms`
        : errorMessage(err, { code: true });
      throw new ApiUnavailableError(`platform unreachable: ${this.o.clean(why)}`, undefined, undefined);
    }
    let body: BatchAddResponse | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      body = parsed !== null && typeof parsed === 'object' ? (parsed as BatchAddResponse) : undefined;
    } catch {
      body = undefined;
    }
    return { httpStatus, body, cls: classifyResponse(httpStatus, body, parseRetryAfter(retryAfter)) };
  }
}
