import type { Command } from 'commander';
import { startDaemon, type Daemon } from '../daemon.js';
import { createLogger } from '../ops/logger.js';
import { loadConfigFromOptions, withSignals, type GlobalOptions } from './common.js';
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
      '--resync',
      'create a new slot and re-sync every source from its snapshot, removing what the tables no longer hold (after a lost slot or a schema change); then stream as usual',
    )
    .addHelpText(
      'after',
      `
Examples:
  tuzhan-cdc run --config config/bridge.yaml
  DATABASE_URL=postgres://bridge@db/crm TUZHAN_TOKEN=... tuzhan-cdc run
  tuzhan-cdc run --resync      # once, after "replication slot ... was invalidated" or a schema change`,
    )
    .action(async (opts: { shutdownTimeout: string; resync?: boolean }, cmd: Command) => {
      const config = await loadConfigFromOptions(cmd.optsWithGlobals<GlobalOptions>());
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
    });
}
