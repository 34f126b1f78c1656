/**
 * `tuzhan-cdc run`: the daemon. Wires config, logger, metrics, the ops endpoint, the platform
 * client and the bridge; SIGTERM/SIGINT stop it cleanly (drain, store outcomes, confirm, close).
 */
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { Bridge } from '../bridge.js';
import type { Config } from '../config/types.js';
import { BridgeError, errorMessage } from '../errors.js';
import { attachEventLogger } from '../ops/event-log.js';
import { createBridgeEvents, type BridgeEvents } from '../ops/events.js';
import { createLogger } from '../ops/logger.js';
import { Metrics } from '../ops/metrics.js';
import { startOpsServer, type OpsServer } from '../ops/ops-server.js';
import { ReadinessTracker } from '../ops/readiness.js';
import { TuzhanClient } from '../tuzhan/client.js';
import { loadConfigFromOptions, withSignals, type GlobalOptions } from './common.js';

export interface Daemon {
  bridge: Bridge;
  events: BridgeEvents;
  metrics: Metrics;
  ops: OpsServer | undefined;
  /** Settles when the bridge stops: rejects with a fatal error. */
  done: Promise<void>;
  /** Clean stop: drain, store outcomes, confirm, close everything. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Starts the whole daemon; resolves once the bridge streams (used by `run` and `demo`). */
export async function startDaemon(
  config: Config,
  logger: Logger,
  options: { resync?: boolean } = {},
): Promise<Daemon> {
  const events = createBridgeEvents();
  attachEventLogger(events, logger);
  const metrics = new Metrics(events, {
    onListenerError: (err) => logger.warn({ err }, 'metrics listener failed'),
  });
  const readiness = new ReadinessTracker(events, { notReadyAfterMs: config.tuzhan.notReadyAfterMs });
  const client = new TuzhanClient(config.tuzhan, { logger });
  const bridge = new Bridge({ config, logger, sender: client, events, resync: options.resync });
  let ops: OpsServer | undefined;
  const stop = async (timeoutMs = 30_000): Promise<void> => {
    await bridge.stop(timeoutMs);
    await client.close().catch(() => {});
    await ops?.close().catch(() => {});
  };
  try {
    const listen = config.http.listen;
    if (listen) {
      ops = await startOpsServer({
        listen,
        metrics,
        readiness: () => readiness.readiness(),
        logger,
        token: config.http.token,
      }).catch((err: unknown) => {
        throw new BridgeError(
          'HTTP_LISTEN',
          `http.listen ${listen.host}:${listen.port}: ${errorMessage(err)}; choose another address, or "off"`,
          { cause: err },
        );
      });
      logger.info({ url: ops.url }, 'ops endpoint listening');
    }
    await bridge.start();
  } catch (err) {
    await stop(1000);
    throw err;
  }
  return { bridge, events, metrics, ops, done: bridge.done, stop };
}

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
