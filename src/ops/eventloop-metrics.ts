/**
 * The event loop's delay, as prom-client's default metrics name it, without the values they show
 * before the first sample: prom-client reads a `monitorEventLoopDelay` histogram at each scrape and
 * resets it, and an empty histogram reports a minimum of 2^63 ns and a mean of NaN, so right after
 * start (and after two scrapes closer together than the sampling interval)
 * `nodejs_eventloop_lag_min_seconds 9223372036.854776` and `..._mean_seconds NaN` were served. Here
 * a gauge has no sample until it has a value, and an empty interval keeps the last values.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** How often the histogram samples, in ms (prom-client's default). */
const RESOLUTION_MS = 10;

/** prom-client's statistics of the delay, after `nodejs_eventloop_lag_`, with their help. */
const STATISTICS: ReadonlyArray<[string, string, (h: IntervalHistogram) => number]> = [
  ['min', 'The minimum recorded event loop delay.', (h) => h.min],
  ['max', 'The maximum recorded event loop delay.', (h) => h.max],
  ['mean', 'The mean of the recorded event loop delays.', (h) => h.mean],
  ['stddev', 'The standard deviation of the recorded event loop delays.', (h) => h.stddev],
  ['p50', 'The 50th percentile of the recorded event loop delays.', (h) => h.percentile(50)],
  ['p90', 'The 90th percentile of the recorded event loop delays.', (h) => h.percentile(90)],
  ['p99', 'The 99th percentile of the recorded event loop delays.', (h) => h.percentile(99)],
];

/** A gauge that is left out of the exposition until it has been set once. */
class SampledGauge extends Gauge {
  private sampled = false;

  record(value: number): void {
    this.set(value);
    this.sampled = true;
  }

  override async get(): ReturnType<Gauge['get']> {
    const metric = await super.get();
    return this.sampled ? metric : { ...metric, values: [] };
  }
}

/**
 * Replaces the event-loop metrics `collectDefaultMetrics` put into `registry` (with `prefix`) by
 * ones that appear with their first sample.
 */
export function replaceEventLoopMetrics(registry: Registry, prefix: string): void {
  const name = (stat?: string) =>
    `${prefix}nodejs_eventloop_lag_${stat === undefined ? '' : `${stat}_`}seconds`;
  registry.removeSingleMetric(name());
  for (const [stat] of STATISTICS) registry.removeSingleMetric(name(stat));

  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  const statistics = STATISTICS.map(
    ([stat, help, read]) =>
      [new SampledGauge({ name: name(stat), help, registers: [registry] }), read] as const,
  );
  const lag: SampledGauge = new SampledGauge({
    name: name(),
    help: 'Lag of event loop in seconds.',
    registers: [registry],
    // One collect for all: the lag is measured from this scrape to the next turn of the loop, the
    // statistics are those of the delays sampled since the last scrape that had any.
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => lag.record(Number(process.hrtime.bigint() - start) / 1e9));
      if (histogram.count === 0) return;
      for (const [gauge, read] of statistics) gauge.record(read(histogram) / 1e9);
      histogram.reset();
    },
  });
}
