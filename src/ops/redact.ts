/**
 * Scrubbing secrets out of URLs, free text and errors: used by the logger and by the CLI's error
 * output, so a database password or a platform token never reaches a terminal or a log collector.
 */

const SECRET_PARAMS = new Set(
  ['instanceSecrect', 'token', 'appSecret', 'password', 'sslpassword', 'access_token', 'secret'].map((p) =>
    p.toLowerCase(),
  ),
);

/**
 * Removes the password from a URL (postgres://user:pw@host -> postgres://user:***@host) and the
 * values of secret query parameters (instanceSecrect, token, ...). Strings that do not parse as a
 * URL are scrubbed by pattern.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return scrubByPattern(url);
  }
  let changed = false;
  if (parsed.password) {
    parsed.password = '***';
    changed = true;
  }
  for (const key of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMS.has(key.toLowerCase())) {
      parsed.searchParams.set(key, '***');
      changed = true;
    }
  }
  // Untouched URLs are returned as written, not in the URL parser's normalized form.
  return changed ? parsed.toString() : url;
}

function scrubByPattern(text: string): string {
  return text
    .replace(/(\/\/[^/\s:@]*:)[^@\s/]*@/g, '$1***@')
    .replace(
      /([?&;\s]|^)(instanceSecrect|token|appSecret|password|sslpassword|access_token)=[^&#\s'"]*/gi,
      '$1$2=***',
    );
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>`]+/gi;

/**
 * Scrubs secrets out of free text (error messages, stacks): every URL goes through `redactUrl`,
 * and libpq-style `password=...` pairs lose their values.
 */
export function redactText(text: string): string {
  return scrubByPattern(text.replace(URL_IN_TEXT, (u) => redactUrl(u)));
}

/** What `serializeError` returns: only fields known to be safe. */
export interface SerializedError {
  type: string;
  message: string;
  code?: string;
  retryable?: boolean;
  httpStatus?: number;
  apiCode?: string;
  configKey?: string;
  problems?: string[];
  stack?: string;
  cause?: SerializedError;
  errors?: SerializedError[];
}

/**
 * Turns any thrown value into a plain object for logs. Unlike pino's default serializer it never
 * copies arbitrary enumerable properties (an HTTP client's error may carry request headers with the
 * token), and it scrubs URLs out of the message and stack.
 */
export function serializeError(err: unknown, depth = 0): SerializedError {
  if (!(err instanceof Error)) {
    return { type: typeof err, message: redactText(safeString(err)) };
  }
  const e = err as Error & Record<string, unknown>;
  const out: SerializedError = {
    type: e.name || e.constructor?.name || 'Error',
    message: redactText(e.message),
  };
  if (typeof e.code === 'string' || typeof e.code === 'number') out.code = String(e.code);
  if (typeof e.retryable === 'boolean') out.retryable = e.retryable;
  if (typeof e.httpStatus === 'number') out.httpStatus = e.httpStatus;
  if (typeof e.apiCode === 'string') out.apiCode = e.apiCode;
  if (typeof e.configKey === 'string') out.configKey = e.configKey;
  if (Array.isArray(e.problems)) out.problems = e.problems.map((p) => redactText(safeString(p)));
  if (typeof e.stack === 'string') out.stack = redactText(e.stack);
  if (depth < 5) {
    if (e.cause !== undefined) out.cause = serializeError(e.cause, depth + 1);
    if (Array.isArray(e.errors)) out.errors = e.errors.slice(0, 10).map((x) => serializeError(x, depth + 1));
  }
  return out;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return '[unprintable]';
  }
}
