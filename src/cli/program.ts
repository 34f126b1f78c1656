/**
 * The `tuzhan-cdc` command line: global options, help, and the one place where errors become
 * exit codes and messages. Commands live in src/cli/<command>.ts and register themselves;
 * main.ts lists them.
 */
import { Command, CommanderError } from 'commander';
import { BridgeError, ConfigError, errorMessage } from '../errors.js';
import { redactText } from '../ops/redact.js';
import { packageVersion } from '../util/version.js';
import { AlreadyReported, CheckFailedError, ExitCode, UsageError } from './common.js';

export type Registrar = (program: Command) => void;

const EXIT_CODES_HELP = `
Exit codes:
  0    ok
  1    runtime failure (database, platform, or an unexpected error)
  2    bad config or usage
  3    a check failed (check)
  130  stopped by a second SIGINT/SIGTERM before a clean shutdown

Environment: DATABASE_URL, TUZHAN_BASE_URL, TUZHAN_TOKEN, TUZHAN_APP_ID and TUZHAN_APP_SECRET
override the config file, and so does TUZHAN_CDC__<SECTION>__<KEY> for every key, e.g.
TUZHAN_CDC__BATCHING__MAX_WAIT_MS=500 or TUZHAN_CDC__SOURCES__0__MATCH__IS_MATCHING=false; each
variable (also one named by \${VAR} in the file) may instead be given as <VAR>_FILE, the path of a
file holding it (Docker secrets). DEBUG=1 prints stack traces like --verbose.`;

/** Builds the program with the given commands registered. */
export function buildProgram(
  registrars: readonly Registrar[],
  writeErr: (text: string) => void = (text) => process.stderr.write(text),
): Command {
  const program = new Command('tuzhan-cdc')
    .description('Change-data-capture bridge: PostgreSQL customer groups -> Tuzhan batchAdd')
    .version(packageVersion(), '-V, --version')
    .option('--config <file>', 'config file (YAML)', 'config/bridge.yaml')
    .option('--verbose', 'print stack traces with errors')
    .addHelpText('after', EXIT_CODES_HELP)
    .showSuggestionAfterError(true);

  for (const register of registrars) register(program);

  // Our own unknown-command message: commander stays silent about unknown operands while no
  // command is registered, and its own message would exit 1 rather than the usage code.
  program.on('command:*', (operands: string[]) => {
    const known = program.commands.map((c) => c.name());
    const hint = known.length > 0 ? ` (commands: ${known.join(', ')})` : '';
    throw new UsageError(`unknown command '${operands[0] ?? ''}'${hint}; see --help`);
  });

  // Applied to every command, also those created with `new Command()` and `addCommand`, which do
  // not inherit the program's settings: commander must throw instead of exiting, print its
  // messages in our one-line format, and list --config and --verbose in each command's --help.
  const configure = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.configureHelp({ ...cmd.configureHelp(), showGlobalOptions: true });
    cmd.configureOutput({
      writeErr,
      outputError: (str, write) => write(`tuzhan-cdc: ${str.replace(/^error: /, '')}`),
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  return program;
}

export interface CliIo {
  stderr: (text: string) => void;
  /** Whether DEBUG asks for stack traces. */
  debug: boolean;
}

/**
 * Runs the command line and returns the exit code. Never throws: every error is printed here,
 * one line per problem, without a stack trace unless --verbose or DEBUG asks for one.
 */
export async function runCli(
  argv: readonly string[],
  registrars: readonly Registrar[],
  io: CliIo,
): Promise<number> {
  let program: Command | undefined;
  let ranAction = false;
  try {
    program = buildProgram(registrars, io.stderr);
    // DEBUG=1 is --verbose, also for the commands that print their own errors (run's failed start).
    if (io.debug) program.setOptionValueWithSource('verbose', true, 'env');
    program.hook('preAction', () => {
      ranAction = true;
    });
    await program.parseAsync([...argv], { from: 'user' });
    if (!ranAction && program.commands.length === 0) {
      // Nothing to run: with commands registered commander shows help by itself.
      io.stderr(program.helpInformation());
      return ExitCode.USAGE;
    }
    return ExitCode.OK;
  } catch (err) {
    const verbose = io.debug || program?.opts().verbose === true || argv.includes('--verbose');
    return report(err, verbose, io.stderr);
  }
}

function report(err: unknown, verbose: boolean, stderr: (text: string) => void): number {
  const line = (text: string): void => stderr(`tuzhan-cdc: ${redactText(text)}\n`);
  if (err instanceof AlreadyReported) return err.exitCode;
  if (err instanceof CommanderError) {
    // Commander printed the message (or the help) already.
    return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  }
  if (err instanceof ConfigError) {
    for (const problem of err.problems) line(`invalid config: ${problem}`);
    if (verbose && err.stack) stderr(`${redactText(err.stack)}\n`);
    return ExitCode.USAGE;
  }
  if (err instanceof BridgeError) {
    const cause = err.cause === undefined ? '' : errorMessage(err.cause);
    const text = cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
    for (const l of text.split('\n')) line(l);
    if (verbose) stderr(`${stackChain(err)}\n`);
    if (err instanceof UsageError) return ExitCode.USAGE;
    if (err instanceof CheckFailedError) return ExitCode.CHECK_FAILED;
    return ExitCode.FAILURE;
  }
  // A bug or an error nobody wrapped (a permission denied, say): one line, like every other error;
  // the stack is what helps whoever debugs it, on request.
  line(
    `unexpected error: ${errorMessage(err, { code: true })}${verbose ? '' : ' (--verbose prints the stack trace)'}`,
  );
  if (verbose) stderr(`${stackChain(err)}\n`);
  return ExitCode.FAILURE;
}

function stackChain(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && depth < 5; depth++) {
    parts.push(cur instanceof Error ? (cur.stack ?? cur.message) : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
    if (cur !== undefined) parts.push('caused by:');
  }
  return redactText(parts.join('\n'));
}
