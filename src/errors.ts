/**
 * One base error with a stable `code`, a `retryable` flag and a `cause`. Everything the bridge throws
 * on purpose is a BridgeError, so the CLI can print one clear line instead of a stack trace.
 */
export class BridgeError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** The config file or environment is invalid; `problems` holds one line per problem. */
export class ConfigError extends BridgeError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG_INVALID', `invalid config:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/**
 * The remedy for a slot whose changes cannot be read any more (lost, or a mapped column gone from
 * them), as the operator types it: a new slot, and every source re-synced from its snapshot.
 */
export const RESYNC_REMEDY = 'tuzhan-cdc run --resync';

/** One thing found wrong before streaming, and what fixes it (a statement to run, a key to correct). */
export interface Problem {
  problem: string;
  remedy?: string;
}

/**
 * A precondition of the database (wal_level, privileges, replica identity, tables) is not met.
 * `findings` holds each problem with its remedy, for the structured log line of a failed start.
 */
export class SetupError extends BridgeError {
  readonly findings: readonly Problem[];
  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; findings?: readonly Problem[] } = {},
  ) {
    super(code, message, { cause: options.cause, retryable: false });
    this.findings = options.findings ?? [];
  }
}

/** The replication slot the bridge streams from is gone. */
export class SlotMissingError extends BridgeError {
  constructor(slot: string) {
    super('SLOT_MISSING', `replication slot "${slot}" does not exist`);
  }
}

/** The platform rejected a whole request (HTTP 400 or a non-200 `code` that is not about auth). */
export class ApiRejectedError extends BridgeError {
  /** How long the request took until this answer (set by the platform client). */
  durationMs?: number;
  constructor(
    message: string,
    readonly httpStatus: number,
    readonly apiCode: string | undefined,
  ) {
    super('API_REJECTED', message);
  }
}

/** The platform could not be reached or answered with a transient failure. */
export class ApiUnavailableError extends BridgeError {
  /** How long the request took until it failed (set by the platform client). */
  durationMs?: number;
  constructor(
    message: string,
    readonly httpStatus: number | undefined,
    readonly retryAfterMs: number | undefined,
    options: { cause?: unknown } = {},
  ) {
    super('API_UNAVAILABLE', message, { ...options, retryable: true });
  }
}

/** Credentials are wrong or no longer accepted; `configKey` says what the operator must fix. */
export class ApiAuthError extends BridgeError {
  /** How long the request took until the refusal (set by the platform client). */
  durationMs?: number;
  constructor(
    message: string,
    readonly configKey: string,
    readonly refreshable: boolean,
    readonly httpStatus?: number,
    readonly apiCode?: string,
  ) {
    super('API_AUTH', message, { retryable: refreshable });
  }
}

/**
 * SQLSTATE classes and codes after which the operation can be retried on a new connection:
 * connection exceptions (08), operator intervention such as a restart (57P01..57P03),
 * serialization failures and deadlocks (40001, 40P01), insufficient resources (53).
 */
const RETRYABLE_SQLSTATE_PREFIXES = ['08', '53', '57P0', '40001', '40P01'];

/** Whether a PostgreSQL (or socket) error is worth a retry after a backoff. */
export function isRetryablePgError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (RETRYABLE_SQLSTATE_PREFIXES.some((p) => code.startsWith(p))) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(code))
      return true;
  }
  return /Connection terminated|connection ended|terminating connection|server closed the connection/i.test(
    err.message,
  );
}

/**
 * Whether an error says the database connection is gone or the server is going away (shutting
 * down, restarting, unreachable), as opposed to a statement that failed on a live connection.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || code.startsWith('57P0')) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(code))
      return true;
  }
  return /Connection terminated|connection ended|terminating connection|server closed the connection|shutting down/i.test(
    err.message,
  );
}

/**
 * The message of any thrown value, for one-line reports. With `code`, a string `code` (a Node
 * errno such as ECONNREFUSED, an SQLSTATE) goes first: network failures say little without it.
 */
export function errorMessage(err: unknown, options: { code?: boolean } = {}): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return options.code && typeof code === 'string' && !err.message.startsWith(code)
    ? `${code}: ${err.message}`
    : err.message;
}
