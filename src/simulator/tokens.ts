/**
 * The simulator's tokens (docs/design.md, "The platform"): a static `X-Token` accepted forever, and tokens issued by
 * `GET /api/open/app/getOrgAccessToken` for an app id and secret, valid for a time.
 */
import { randomBytes } from 'node:crypto';

export interface TokenOptions {
  /** A static X-Token accepted forever. */
  token?: string;
  appId?: string;
  appSecret?: string;
  ttlSeconds?: number;
}

/** The token endpoint's answer: a token, or the refusal of the app credentials. */
export type Issued =
  { ok: true; orgAccessToken: string; orgRefreshToken: string; expire: number } | { ok: false };

export class Tokens {
  private readonly issued = new Map<string, number>();
  private readonly ttlMs: number;

  constructor(private readonly o: TokenOptions) {
    this.ttlMs = (o.ttlSeconds ?? 7200) * 1000;
  }

  /** Whether an X-Token is accepted now. */
  valid(token: string | undefined): boolean {
    if (token === undefined || token === '') return false;
    if (this.o.token !== undefined && token === this.o.token) return true;
    const until = this.issued.get(token);
    return until !== undefined && Date.now() < until;
  }

  /** Issues a token for the app credentials the query names (the vendor's spelling `instanceSecrect`). */
  issue(query: URLSearchParams): Issued {
    const ok =
      this.o.appId !== undefined &&
      this.o.appSecret !== undefined &&
      query.get('instanceAppid') === this.o.appId &&
      query.get('instanceSecrect') === this.o.appSecret;
    if (!ok) return { ok: false };
    const token = randomBytes(16).toString('hex');
    this.issued.set(token, Date.now() + this.ttlMs);
    return {
      ok: true,
      orgAccessToken: token,
      orgRefreshToken: randomBytes(16).toString('hex'),
      expire: this.ttlMs / 1000,
    };
  }

  /** Every issued token expires now (the static token stays). */
  expireAll(): void {
    this.issued.clear();
  }
}
