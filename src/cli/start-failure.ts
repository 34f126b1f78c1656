/**
 * What `run` does when the bridge stops before it streams: a bad config, a failed startup check (a
 * mapped column that does not exist, a missing privilege, wal_level), refused credentials, or an
 * error nobody foresaw. Each problem is printed on stderr with its remedy, and the log gets one
 * structured `fatal` line with the same (a container's log collector reads stdout, where the JSON
 * log goes). With `--config-error-delay N` the exit then waits N seconds, so a restart policy does
 * not restart into the same failure in a loop; only a database or platform that cannot be reached
 * exits at once, since a restart is what fixes those.
 */
import type { Logger } from 'pino';
import {
  BridgeError,
  ConfigError,
  SetupError,
  errorMessage,
  isConnectionLoss,
  type Problem,
} from '../errors.js';
import { redactText } from '../ops/redact.js';
import { AlreadyReported, ExitCode } from './common.js';

/** A failed start, as it is reported. */
export interface StartFailure {
  /** A stable code: the BridgeError's, the SQLSTATE's class, or UNEXPECTED. */
  code: string;
  exitCode: number;
  problems: Problem[];
  /** The database or the platform cannot be reached (yet): a restart may fix it, waiting does not. */
  transient: boolean;
  /** No error the bridge knows: its stack trace is logged at debug level. */
  unexpected: boolean;
}

/** SQLSTATE 42501: the role lacks a privilege PostgreSQL checked. */
const INSUFFICIENT_PRIVILEGE = '42501';

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e !== undefined && chain.length < 6; e = e instanceof Error ? e.cause : undefined)
    chain.push(e);
  return chain;
}

function sqlState(err: unknown): string | undefined {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** The problems of a failed start, each with its remedy where the bridge knows it. */
export function describeStartFailure(err: unknown): StartFailure {
  const transient =
    !(err instanceof ConfigError) &&
    causes(err).some(
      (e) => isConnectionLoss(e) || (e instanceof BridgeError && e.code === 'PLATFORM_UNREACHABLE'),
    );
  const base = { transient, unexpected: false };
  if (err instanceof ConfigError)
    return {
      ...base,
      code: err.code,
      exitCode: ExitCode.USAGE,
      // Each line names the key, where its value came from, and what is expected: its own remedy.
      problems: err.problems.map((p) => ({ problem: `invalid config: ${p}` })),
    };
  if (err instanceof SetupError && err.findings.length > 0)
    return { ...base, code: err.code, exitCode: ExitCode.FAILURE, problems: [...err.findings] };
  if (sqlState(err) === INSUFFICIENT_PRIVILEGE)
    return {
      ...base,
      code: 'INSUFFICIENT_PRIVILEGE',
      exitCode: ExitCode.FAILURE,
      problems: [
        {
          problem: withCause(err),
          remedy:
            'grant the privilege named; `tuzhan-cdc check` lists every one the role lacks, with the statement to run',
        },
      ],
    };
  if (err instanceof BridgeError && err.code === 'DB_UNREACHABLE')
    return {
      ...base,
      code: err.code,
      exitCode: ExitCode.FAILURE,
      problems: [
        {
          problem: withCause(err),
          remedy: transient
            ? 'start the bridge again once the database accepts connections (a restart policy does)'
            : 'check postgres.url: host, port, database, user and password, and that pg_hba.conf lets this host in',
        },
      ],
    };
  if (err instanceof BridgeError)
    return {
      ...base,
      code: err.code,
      exitCode: ExitCode.FAILURE,
      problems: withCause(err)
        .split('\n')
        .map((problem) => ({ problem })),
    };
  return {
    ...base,
    code: 'UNEXPECTED',
    exitCode: ExitCode.FAILURE,
    unexpected: true,
    problems: [{ problem: `unexpected error: ${errorMessage(err, { code: true })}` }],
  };
}

/** A BridgeError's message with its cause's, as the CLI prints every error. */
function withCause(err: unknown): string {
  const message = errorMessage(err);
  const cause = err instanceof Error && err.cause !== undefined ? errorMessage(err.cause) : '';
  return cause && !message.includes(cause) ? `${message}: ${cause}` : message;
}

export interface ReportOptions {
  logger: Logger;
  /** `--config-error-delay`, in seconds (0: exit at once). */
  delaySeconds: number;
  /** --verbose or DEBUG: the stack trace on stderr too. */
  verbose: boolean;
  /** Default: stderr. */
  write?: (line: string) => void;
}

/**
 * Reports a failed start (stderr and one `fatal` log line), waits `delaySeconds` unless a restart
 * can fix it, and throws AlreadyReported with the exit code.
 */
export async function reportStartFailure(err: unknown, o: ReportOptions): Promise<never> {
  const write = o.write ?? ((line: string) => process.stderr.write(`tuzhan-cdc: ${line}\n`));
  const f = describeStartFailure(err);
  const problems = f.problems.map((p) => ({
    problem: redactText(p.problem),
    ...(p.remedy === undefined ? {} : { remedy: redactText(p.remedy) }),
  }));
  const hold = o.delaySeconds > 0 && !f.transient ? o.delaySeconds : 0;
  // An unexpected error is one line for the operator too; its trace is for whoever debugs it, at
  // debug level in the log, or on stderr with --verbose.
  const hint = f.unexpected && !o.verbose ? ' (--verbose or log level debug shows the stack trace)' : '';
  for (const p of problems)
    write(p.remedy === undefined ? `${p.problem}${hint}` : `${p.problem} — fix: ${p.remedy}`);
  if (f.unexpected) {
    o.logger.debug({ err }, 'the stack trace of the error that stopped the start');
    if (o.verbose) process.stderr.write(`${redactText(err instanceof Error ? (err.stack ?? '') : '')}\n`);
  }
  const first = problems[0];
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  o.logger.fatal(
    {
      code: f.code,
      exitCode: f.exitCode,
      problems,
      ...(hold > 0 ? { exitInSeconds: hold } : {}),
    },
    `cannot start: ${first?.problem ?? 'unknown error'}${first?.remedy ? ` — fix: ${first.remedy}` : ''}${more}`,
  );
  if (hold > 0) {
    write(
      `exiting in ${hold} s (--config-error-delay), so that a restart policy does not loop; fix it, then restart`,
    );
    await waitOrSignal(hold);
  }
  throw new AlreadyReported(f.exitCode);
}

/**
 * Waits `seconds`, or until SIGTERM or SIGINT (`docker compose restart` after the fix acts at once).
 * Retrying cannot fix a config or a missing privilege, and a container restarted after every exit
 * would fill its log with the same lines as fast as the restart policy allows.
 */
function waitOrSignal(seconds: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      process.off('SIGTERM', done).off('SIGINT', done);
      resolve();
    };
    const timer = setTimeout(done, seconds * 1000);
    process.on('SIGTERM', done).on('SIGINT', done);
  });
}
