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
import { Bridge } from './pipeline/supervisor.js';
import { TuzhanClient } from './tuzhan/client.js';
import type { LimiterChange, LimiterState } from './tuzhan/limiter.js';
import { formatLsn } from './util/lsn.js';
import { packageVersion } from './util/version.js';

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

export interface DaemonOptions {
  /**
   * The stop (the CLI's SIGTERM): once it aborts, the daemon stops as `stop(stopTimeoutMs)` does,
   * at any moment of its start or of streaming; a start in progress rejects.
   */
  signal?: AbortSignal;
  /** How long a stop the signal asks for may take (default 30 s). */
  stopTimeoutMs?: number;
  /** `run --resync`. */
  resync?: boolean;
  /** How often the log sums up what was sent (default 60 s). */
  summaryIntervalMs?: number;
  /** How often the slot lag and the sync_status counts are measured (default 5 s and 15 s). */
  lagIntervalMs?: number;
  statusIntervalMs?: number;
}

/** Starts the whole daemon; resolves once the bridge streams. */
export async function startDaemon(
  config: Config,
  logger: Logger,
  options: DaemonOptions = {},
): Promise<Daemon> {
  const version = packageVersion();
  const { postgres, tuzhan, sources } = config;
  // One line that says what this process is and does, before anything can fail or take long.
  logger.info(
    {
      version,
      node: process.versions.node,
      sources: sources.map((s) => `${s.name} (${s.table}, ${s.mode})`),
      slot: postgres.slot,
      publication: postgres.publication,
      statusSchema: postgres.statusSchema,
      platform: tuzhan.baseUrl,
      http: config.http.listen ? `${config.http.listen.host}:${config.http.listen.port}` : 'off',
      resync: options.resync === true,
    },
    `tuzhan-cdc ${version} starting: ${sources.length} source${sources.length === 1 ? '' : 's'}, slot ${postgres.slot}, status schema ${postgres.statusSchema}`,
  );
  const events = createBridgeEvents();
  const detachLog = attachEventLogger(events, logger, { summaryIntervalMs: options.summaryIntervalMs });
  const metrics = new Metrics(events, {
    version,
    onListenerError: (err) => logger.warn({ err }, 'metrics listener failed'),
  });
  const readiness = new ReadinessTracker(events, { notReadyAfterMs: config.tuzhan.notReadyAfterMs });
  const client = new TuzhanClient(config.tuzhan, { logger });
  const limiter = client.transport.limiter;
  // What the platform's answers teach the one limiter of the process: metrics, a log line when it
  // moves a lot, the console and `status` (through the console's API).
  const rateEvent = (s: LimiterState, c?: LimiterChange): void =>
    void events.emit('requestRate', { ...s, change: c && { what: c.kind, ...c.change } });
  limiter.subscribe(rateEvent);
  rateEvent(limiter.state());
  // Registered before the bridge listens to the signal too: this stop, with its timeout and its
  // giving up on refused credentials, is the one in progress when the bridge's own comes.
  const onSignal = (): void => void stop(options.stopTimeoutMs).catch(() => {});
  options.signal?.addEventListener('abort', onSignal, { once: true });
  const bridge = new Bridge({
    config,
    logger,
    sender: client,
    events,
    resync: options.resync,
    signal: options.signal,
    lagIntervalMs: options.lagIntervalMs,
    statusIntervalMs: options.statusIntervalMs,
  });
  let ops: OpsServer | undefined;
  let webConsole: WebConsole | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (timeoutMs = 30_000): Promise<void> =>
    (stopping ??= (async () => {
      const refused = whileRefused(events, readiness, () =>
        logger.warn(
          { configKey: client.credentialsKey },
          `stopping without waiting for requests: the platform refuses the credentials (fix ${client.credentialsKey}); the changes they carry stay unconfirmed and are sent after the next start`,
        ),
      );
      try {
        await bridge.stop(timeoutMs, refused.signal);
      } finally {
        refused.dispose();
        detachLog();
        await client.close().catch(() => {});
        await ops?.close().catch(() => {});
        await webConsole?.close();
        // Where the next start resumes: everything before it has its outcome stored.
        const confirmed = bridge.confirmedLsn;
        logger.info(
          { slot: postgres.slot, confirmed: confirmed > 0n ? formatLsn(confirmed) : null },
          confirmed > 0n
            ? `stopped; slot ${postgres.slot} confirmed up to ${formatLsn(confirmed)}`
            : 'stopped before streaming; nothing confirmed',
        );
      }
    })());
  if (options.signal?.aborted) onSignal();
  try {
    const listen = config.http.listen;
    if (listen) {
      webConsole = createConsole({
        config,
        logger,
        metrics,
        readiness: () => readiness.readiness(),
        // The retry button retries one failure group where the stream's requests are ordered.
        retry: async ({ source, error }) => {
          const [r] = await bridge.retryFailed({ source, error });
          return { rows: r?.rows ?? 0, outcomes: r?.outcomes ?? {}, stillFailed: r?.stillFailed ?? [] };
        },
        // Approve and reject settle held rows as `tuzhan-cdc held` does, where the requests are ordered.
        settleHeld: async (action, source) => (await bridge.settleHeld(action, { source }))[0] ?? null,
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
      logger.info({ console: `${ops.url}/console/` }, `web console at ${ops.url}/console/`);
    }
    await bridge.start();
  } catch (err) {
    await stop(1000);
    throw err;
  }
  return { bridge, events, metrics, ops, done: bridge.done, stop };
}

/**
 * A signal that aborts as soon as the platform refuses the credentials, now or while a stop drains:
 * every request then waits for credentials an operator must fix, so nothing can be delivered, and
 * waiting for the shutdown timeout would only delay the exit.
 */
function whileRefused(
  events: BridgeEvents,
  readiness: ReadinessTracker,
  onRefused: () => void,
): { signal: AbortSignal; dispose(): void } {
  const giveUp = new AbortController();
  const check = (): void => {
    if (giveUp.signal.aborted || readiness.readiness().checks.credentials !== 'refused') return;
    onRefused();
    giveUp.abort(new Error('the platform refuses the credentials'));
  };
  check();
  events.on('request', check);
  return { signal: giveUp.signal, dispose: () => events.off('request', check) };
}
