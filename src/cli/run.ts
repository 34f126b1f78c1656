/**
 * `tuzhan-cdc run`: the daemon (src/daemon.ts) until SIGTERM/SIGINT, which stop it cleanly
 * (drain, store outcomes, confirm, close).
 */
import type { Command } from 'commander';
import { startDaemon, type Daemon } from '../daemon.js';
import { createLogger } from '../ops/logger.js';
import { loadConfigFromOptions, UsageError, withSignals, type GlobalOptions } from './common.js';
import { dryRunCommand } from '../pipeline/dry-run.js';
import { reportStartFailure } from './start-failure.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('run the bridge: stream changes to the platform and record outcomes (until SIGTERM)')
    .option('--shutdown-timeout <ms>', 'how long a clean stop may take', '30000')
    .option(
      '--config-error-delay <seconds>',
      'when the bridge cannot start (a bad config, a missing column or privilege, refused credentials), wait this long before exiting, so a restart policy (docker compose restart: unless-stopped) does not restart it into a loop; SIGTERM ends the wait. A database or platform that cannot be reached still exits at once',
      '0',
    )
    .option(
      '--resync',
      'create a new slot and re-sync every source from its snapshot, removing what the tables no longer hold (after a lost slot or a schema change); then stream as usual',
    )
    .option(
      '--dry-run',
      'with --resync: say per source what the re-sync would add and remove, as the tables are now, and send nothing',
    )
    .addHelpText(
      'after',
      `
Examples:
  tuzhan-cdc run --config config/bridge.yaml
  DATABASE_URL=postgres://bridge@db/crm TUZHAN_TOKEN=... tuzhan-cdc run
  tuzhan-cdc run --resync      # once, after "replication slot ... was invalidated" or a schema change
  tuzhan-cdc run --resync --dry-run   # first: what it would add and remove
  tuzhan-cdc run --config-error-delay 300   # in a container with a restart policy`,
    )
    .action(
      async (
        opts: { shutdownTimeout: string; resync?: boolean; dryRun?: boolean; configErrorDelay: string },
        cmd: Command,
      ) => {
        const globals = cmd.optsWithGlobals<GlobalOptions>();
        if (opts.dryRun) {
          if (!opts.resync)
            throw new UsageError('--dry-run goes with --resync (tuzhan-cdc run --resync --dry-run)');
          const config = await loadConfigFromOptions(globals);
          const lines = await dryRunCommand(config, {});
          process.stdout.write(
            `${lines.join('\n')}\nnothing was sent (a dry run); a re-sync reads the tables as they are when it runs\n`,
          );
          return;
        }
        const delaySeconds = Number(opts.configErrorDelay);
        if (!(delaySeconds >= 0))
          throw new UsageError('--config-error-delay: expected a number of seconds (0: exit at once)');
        const failed = (err: unknown, level: Parameters<typeof createLogger>[0]['level'] = 'info') =>
          reportStartFailure(err, {
            logger: createLogger({ level }),
            delaySeconds,
            verbose: globals.verbose === true,
          });
        const config = await loadConfigFromOptions(globals).catch((err: unknown) => failed(err));
        const logger = createLogger({ level: config.log.level });
        const timeoutMs = Number(opts.shutdownTimeout) || 30_000;
        // Signals are taken from the start, and stop the daemon at any moment: during the start
        // (the checks, the standby wait, the first-start snapshot), nothing is confirmed yet and the
        // next start redoes what was cut short (an unfinished snapshot is started over); once
        // streaming, it drains, stores outcomes and confirms before exiting.
        const stopping = new AbortController();
        const starting = startDaemon(config, logger, {
          resync: opts.resync === true,
          signal: stopping.signal,
          stopTimeoutMs: timeoutMs,
        });
        const removeSignals = withSignals(
          async () => {
            stopping.abort(new Error('stop requested'));
            const started = await starting.catch(() => undefined);
            if (started) await started.stop(timeoutMs);
            else logger.warn('stopped before streaming began; the next start redoes what this one had begun');
          },
          { timeoutMs: timeoutMs + 5000 },
        );
        let daemon: Daemon;
        try {
          daemon = await starting;
        } catch (err) {
          // Stopped by a signal: its handler ends the process once the stop is done.
          if (stopping.signal.aborted) return;
          removeSignals();
          return failed(err, config.log.level);
        }
        try {
          await daemon.done;
        } catch (err) {
          removeSignals();
          await daemon.stop(1000).catch(() => {});
          throw err;
        }
      },
    );
}
