/**
 * The simulator's sustained quota (`mock-api --rate-limit N`, fault `rateLimit`): N batchAdd
 * requests a second, past which it answers 429 with a Retry-After. Modelled as API gateways
 * configure one (Spring Cloud Gateway's, AWS API Gateway's): a token bucket refilled at N a second
 * that holds a second's worth, so a client keeping just under N is never refused, and one idle for a
 * while may send a short burst. A refused request takes no token: it is counted, not served.
 */

export class Quota {
  private tokens = 0;
  private rate = 0;
  private last = 0;

  /**
   * Whether a request arriving at `now` (ms) is within a quota of `rate` a second (0: no quota);
   * when it is not, the Retry-After to answer, in whole seconds (at least 1).
   */
  take(rate: number, now: number): { ok: true } | { ok: false; retryAfterSeconds: number } {
    const size = (r: number): number => Math.max(1, r);
    // Refilled at the rate that held until now; a new quota starts full, a lower one holds no more
    // than its own second's worth.
    if (this.rate > 0)
      this.tokens = Math.min(size(this.rate), this.tokens + ((now - this.last) / 1000) * this.rate);
    else if (rate > 0) this.tokens = size(rate);
    this.last = now;
    if (rate !== this.rate) {
      this.tokens = Math.min(this.tokens, size(rate));
      this.rate = rate;
    }
    if (rate <= 0) return { ok: true };
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - this.tokens) / rate)) };
  }
}
