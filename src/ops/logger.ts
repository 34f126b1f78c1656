/**
 * Logging: pino JSON lines (one object per line, for the container's log collector), or
 * pino-pretty on a terminal. Secrets never reach a log line: known secret fields are censored by
 * path, URL-valued fields lose their passwords and secret query parameters, and errors go through
 * `serializeError`, which copies only whitelisted fields and scrubs URLs out of messages and stacks.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';
import { redactUrl, serializeError } from './redact.js';

export { redactUrl, redactText, serializeError, type SerializedError } from './redact.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Human-readable output; default: whether stdout is a terminal. */
  pretty?: boolean;
  /** Where lines go; default stdout. */
  destination?: DestinationStream;
}

const CENSORED = '[redacted]';

/** Fields whose value is a secret wherever they appear (top level or one level down). */
const SECRET_KEYS = [
  'token',
  'appSecret',
  'password',
  'orgAccessToken',
  'orgRefreshToken',
  'instanceSecrect',
  'authorization',
];

/** Fields that hold URLs or connection strings: kept, with their secrets removed. */
const URL_KEYS = ['url', 'baseUrl', 'databaseUrl', 'connectionString'];

const REDACT_PATHS = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`]),
  // The config object logged whole at startup: tuzhan.token sits two levels below it.
  'config.tuzhan.token',
  'config.tuzhan.appSecret',
  'config.postgres.url',
  ...['x-token', 'X-Token', 'authorization', 'Authorization'].flatMap((h) => [
    `headers["${h}"]`,
    `*.headers["${h}"]`,
  ]),
  ...URL_KEYS.flatMap((k) => [k, `*.${k}`]),
];

const URL_PATH_ENDS = new Set([...URL_KEYS, 'url']);

function censor(value: unknown, path: string[]): unknown {
  const last = path[path.length - 1];
  if (last !== undefined && URL_PATH_ENDS.has(last) && typeof value === 'string') return redactUrl(value);
  if (value === undefined) return undefined;
  return CENSORED;
}

/** Creates the process logger. */
export function createLogger(options: LoggerOptions): Logger {
  const usePretty = options.pretty ?? process.stdout.isTTY === true;
  const pinoOptions = {
    level: options.level,
    base: { name: 'tuzhan-cdc' },
    // `"time":"2026-05-04T09:12:03.123Z","level":"warn"`: readable without a decoder, and what log
    // collectors parse as a timestamp and a severity (pino's default is epoch milliseconds and 40).
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor },
    serializers: { err: serializeError, error: serializeError },
  };
  if (usePretty) {
    // A stream in this thread, not a worker transport: worker transports resolve their target by
    // module name at run time, which fails from bundled or compiled code.
    const stream = pretty({
      colorize: options.destination === undefined && process.stdout.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      sync: true,
      ...(options.destination ? { destination: options.destination as NodeJS.WritableStream } : {}),
    });
    return pino(pinoOptions, stream);
  }
  return options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
