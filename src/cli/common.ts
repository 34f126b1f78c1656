/**
 * Helpers every command uses: exit codes, config loading from the global options, and the
 * signal handling of long-running commands.
 */
import type { Config } from '../config/types.js';
import { BridgeError, errorMessage } from '../errors.js';
import { redactText } from '../ops/redact.js';

/** Process exit codes, documented in `--help`. */
export const ExitCode = {
  OK: 0,
  /** Runtime failure: database or platform trouble, a bug. */
  FAILURE: 1,
  /** Bad config or command line. */
  USAGE: 2,
  /** `check` ran and found a problem. */
  CHECK_FAILED: 3,
  /** Stopped by a second signal without a clean shutdown (128 + SIGINT). */
  FORCED: 130,
} as const;

/** The command line is wrong (unknown command, bad option value): exit 2. */
export class UsageError extends BridgeError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** A command's checks found problems it has already printed: exit 3. */
export class CheckFailedError extends BridgeError {
  constructor(message: string) {
    super('CHECK_FAILED', message);
  }
}

/** An error the command has printed already: only its exit code is left to give. */
export class AlreadyReported extends BridgeError {
  constructor(readonly exitCode: number) {
    super('ALREADY_REPORTED', 'already reported');
  }
}

/** The global options every command sees through `command.optsWithGlobals()`. */
export interface GlobalOptions {
  config: string;
  verbose?: boolean;
}

/**
 * Loads and validates the config named by `--config`, with the process environment for `${VAR}`
 * and the overriding variables. Throws `ConfigError` (exit 2) when it is invalid.
 */
export async function loadConfigFromOptions(opts: Pick<GlobalOptions, 'config'>): Promise<Config> {
  // Imported lazily so `--help` and `mock-api` start without zod and YAML.
  const { loadConfig } = await import('../config/load-config.js');
  return loadConfig({ file: opts.config, env: process.env });
}

export interface SignalOptions {
  /** How long a clean stop may take before the process gives up and exits 1. */
  timeoutMs: number;
  /** Told what is happening ("stopping on SIGTERM", ...). */
  log?: (message: string) => void;
  /** For tests; default `process.exit`. */
  exit?: (code: number) => void;
}

/**
 * Makes SIGTERM and SIGINT stop a long-running command cleanly: the first signal calls `stop`
 * and exits 0 once it resolves (1 if it rejects or takes longer than `timeoutMs`); a second
 * signal exits 130 at once. Returns a function that removes the handlers, for a command that
 * ends on its own.
 */
export function withSignals(
  stop: (signal: NodeJS.Signals) => Promise<void>,
  options: SignalOptions,
): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const log = options.log ?? ((message: string) => process.stderr.write(`tuzhan-cdc: ${message}\n`));
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log(`${signal} again: exiting without a clean stop`);
      exit(ExitCode.FORCED);
      return;
    }
    stopping = true;
    log(`${signal}: stopping (send it again to force)`);
    timer = setTimeout(() => {
      log(`did not stop within ${options.timeoutMs} ms; exiting`);
      exit(ExitCode.FAILURE);
    }, options.timeoutMs);
    timer.unref();
    stop(signal).then(
      () => {
        clearTimeout(timer);
        exit(ExitCode.OK);
      },
      (err: unknown) => {
        clearTimeout(timer);
        log(`stopping failed: ${redactText(errorMessage(err))}`);
        exit(ExitCode.FAILURE);
      },
    );
  };

  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    clearTimeout(timer);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
