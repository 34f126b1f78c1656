import type { Command } from 'commander';
import { startDaemon, type Daemon } from '../daemon.js';
import { createLogger } from '../ops/logger.js';
import { ConfigError } from '../errors.js';
import { redactText } from '../ops/redact.js';
import {
  AlreadyReported,
  ExitCode,
  loadConfigFromOptions,
  withSignals,
  type GlobalOptions,
} from './common.js';
/**
 * `tuzhan-cdc run`: the daemon (src/daemon.ts) until SIGTERM/SIGINT, which stop it cleanly
 * (drain, store outcomes, confirm, close).
 */

export function register(program: Command): void {
  program
    .command('run')
    .description('run the bridge: stream changes to the platform and record outcomes (until SIGTERM)')
    .option('--shutdown-timeout <ms>', 'how long a clean stop may take', '30000')
    .option(
      '--config-error-delay <seconds>',
      'on a config error, wait this long before exiting 2, so a restart policy (docker compose restart: unless-stopped) does not restart a bridge that cannot start into a loop; SIGTERM ends the wait',
      '0',
    )
    .option(
      '--resync',
      'create a new slot and re-sync every source from its snapshot, removing what the tables no longer hold (after a lost slot or a schema change); then stream as usual',
    )
    .addHelpText(
      'after',
      `
Examples:
  tuzhan-cdc run --config config/bridge.yaml
  DATABASE_URL=postgres://bridge@db/crm TUZHAN_TOKEN=... tuzhan-cdc run
  tuzhan-cdc run --resync      # once, after "replication slot ... was invalidated" or a schema change
  tuzhan-cdc run --config-error-delay 300   # in a container with a restart policy`,
    )
    .action(
      async (opts: { shutdownTimeout: string; resync?: boolean; configErrorDelay: string }, cmd: Command) => {
        const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>()).catch(
          async (err: unknown) => {
            const delay = Number(opts.configErrorDelay);
            if (!(err instanceof ConfigError) || !(delay > 0)) throw err;
            await holdConfigError(err, delay);
            throw new AlreadyReported(ExitCode.USAGE);
          },
        );
        const logger = createLogger({ level: config.log.level });
        const timeoutMs = Number(opts.shutdownTimeout) || 30_000;
        // Signals are taken from the start. One that comes before streaming (checks, migrations,
        // the first-start snapshot) exits at once: nothing is confirmed yet, and the next start
        // redoes what was cut short (an unfinished snapshot is started over). Once streaming, a
        // signal drains, stores outcomes and confirms before exiting.
        let daemon: Daemon | undefined;
        const removeSignals = withSignals(
          async () => {
            if (daemon) await daemon.stop(timeoutMs);
            else logger.warn('stopped before streaming began; the next start redoes what this one had begun');
          },
          { timeoutMs: timeoutMs + 5000 },
        );
        try {
          daemon = await startDaemon(config, logger, { resync: opts.resync === true });
          await daemon.done;
        } catch (err) {
          removeSignals();
          await daemon?.stop(1000).catch(() => {});
          throw err;
        }
      },
    );
}

/**
 * Prints the config's problems now, then waits `seconds` (SIGTERM or SIGINT end the wait) before the
 * exit. A container restarted after every exit would otherwise run a bridge that cannot start as
 * fast as the restart policy allows: retrying cannot fix a config, and the log fills with the same
 * lines. Waiting keeps them to one set every `seconds`, and `docker compose restart` after the fix
 * still acts at once.
 */
async function holdConfigError(err: ConfigError, seconds: number): Promise<void> {
  const write = (line: string): boolean => process.stderr.write(`tuzhan-cdc: ${line}\n`);
  for (const problem of err.problems) write(`invalid config: ${redactText(problem)}`);
  write(
    `exiting in ${seconds} s (--config-error-delay), so that a restart policy does not loop; fix the config, then restart`,
  );
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      process.off('SIGTERM', done).off('SIGINT', done);
      resolve();
    };
    const timer = setTimeout(done, seconds * 1000);
    process.on('SIGTERM', done).on('SIGINT', done);
  });
}
