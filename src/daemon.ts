/**
 * The daemon as one object: config, logger, metrics, the ops endpoint, the platform client and the
 * bridge, wired; used by `run` and the demo. `stop` drains, stores outcomes, confirms and closes.
 */
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { createBridgeEvents, type BridgeEvents } from './domain/events.js';
import { BridgeError, errorMessage } from './errors.js';
import { createConsole, type WebConsole } from './ops/console/console.js';
import { attachEventLogger } from './ops/event-log.js';
import { Metrics } from './ops/metrics.js';
import { startOpsServer, type OpsServer } from './ops/ops-server.js';
import { ReadinessTracker } from './ops/readiness.js';
import { retryFailed } from './pipeline/retry-failed.js';
import { Bridge } from './pipeline/supervisor.js';
import { TuzhanClient } from './tuzhan/client.js';

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

/** Starts the whole daemon; resolves once the bridge streams. */
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
  let webConsole: WebConsole | undefined;
  const stop = async (timeoutMs = 30_000): Promise<void> => {
    await bridge.stop(timeoutMs);
    await client.close().catch(() => {});
    await ops?.close().catch(() => {});
    await webConsole?.close();
  };
  try {
    const listen = config.http.listen;
    if (listen) {
      webConsole = createConsole({
        config,
        logger,
        metrics,
        readiness: () => readiness.readiness(),
        // The retry button takes the path of `tuzhan-cdc retry-failed`, limited to one error.
        retry: async ({ source, error }) => {
          const [r] = await retryFailed(config, { source, error });
          return { rows: r?.rows ?? 0, outcomes: r?.outcomes ?? {}, stillFailed: r?.stillFailed ?? [] };
        },
      });
      ops = await startOpsServer({
        listen,
        metrics,
        readiness: () => readiness.readiness(),
        logger,
        token: config.http.token,
        console: webConsole,
      }).catch((err: unknown) => {
        throw new BridgeError(
          'HTTP_LISTEN',
          `http.listen ${listen.host}:${listen.port}: ${errorMessage(err)}; choose another address, or "off"`,
          { cause: err },
        );
      });
      logger.info({ url: ops.url, console: `${ops.url}/console/` }, 'ops endpoint listening');
    }
    await bridge.start();
  } catch (err) {
    await stop(1000);
    throw err;
  }
  return { bridge, events, metrics, ops, done: bridge.done, stop };
}
