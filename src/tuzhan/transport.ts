/**
 * The HTTP side of the platform client: one keep-alive undici Pool and a p-queue that bounds
 * concurrency and the request rate (every attempt counts: that is what the platform sees). One POST
 * of batchAdd at a time, classified (src/tuzhan/outcomes.ts); network errors and timeouts become
 * ApiUnavailableError with a secret-free message.
 */
import PQueue from 'p-queue';
import { Pool } from 'undici';
import { ApiUnavailableError, BridgeError, errorMessage } from '../errors.js';
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
  private readonly queue: PQueue;

  constructor(private readonly o: TransportOptions) {
    const url = new URL(o.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: Math.max(1, o.concurrency),
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      keepAliveTimeout: 30_000,
    });
    this.queue = new PQueue({
      concurrency: Math.max(1, o.concurrency),
      ...(o.ratePerSecond > 0 ? { intervalCap: o.ratePerSecond, interval: 1000 } : {}),
    });
  }

  async close(): Promise<void> {
    this.queue.clear();
    await this.pool.close();
  }

  /** One POST; network errors and timeouts become ApiUnavailableError with a secret-free message. */
  async post(
    payload: string,
    token: string,
    signal: AbortSignal | undefined,
  ): Promise<{ httpStatus: number; body: BatchAddResponse | undefined; cls: Classification }> {
    if (signal?.aborted) throw new RequestAbortedError();
    const task = this.queue.add(
      async () => {
        // The timeout starts when the request leaves the queue, not while it waits in it.
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
      },
      { signal },
    );
    try {
      return await task;
    } catch (err) {
      if (signal?.aborted && !(err instanceof BridgeError)) throw new RequestAbortedError();
      throw err;
    }
  }
}
