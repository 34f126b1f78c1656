/**
 * `tuzhan-cdc mock-api`: runs the platform simulator (docs/design.md, "The platform") until SIGINT/SIGTERM, for the
 * demo, docker compose and manual testing. Prints one line with its URL.
 */
import type { Command } from 'commander';
import type { Simulator } from '../simulator/server.js';

export interface MockApiOptions {
  listen: string;
  token?: string;
  appId?: string;
  appSecret?: string;
  registry?: string;
  tokenTtl?: string;
  rateLimit?: string;
}

/** "HOST:PORT", ":PORT" or "PORT"; IPv6 hosts in brackets ("[::1]:8080"). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got "${value}"`);
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** Starts the simulator from command-line options (exported for tests). */
export async function startMockApi(o: MockApiOptions): Promise<Simulator> {
  const { host, port } = parseListen(o.listen);
  if ((o.appId === undefined) !== (o.appSecret === undefined)) {
    throw new Error('--app-id and --app-secret go together');
  }
  if (o.token === undefined && o.appId === undefined)
    throw new Error('give --token or --app-id/--app-secret');
  const ttl = o.tokenTtl === undefined ? undefined : Number(o.tokenTtl);
  if (ttl !== undefined && !(Number.isFinite(ttl) && ttl > 0))
    throw new Error('--token-ttl: expected seconds > 0');
  const rateLimit = o.rateLimit === undefined ? 0 : Number(o.rateLimit);
  if (!(Number.isFinite(rateLimit) && rateLimit >= 0))
    throw new Error('--rate-limit: expected requests per second >= 0 (0: none)');
  // Loaded here, not at the top: `run` (a long-lived daemon) should not carry the simulator.
  const [{ pino }, { loadRegistry }, { startSimulator }] = await Promise.all([
    import('pino'),
    import('../simulator/model.js'),
    import('../simulator/server.js'),
  ]);
  return startSimulator({
    host,
    port,
    token: o.token,
    appId: o.appId,
    appSecret: o.appSecret,
    registry: o.registry === undefined ? [] : await loadRegistry(o.registry),
    tokenTtlSeconds: ttl,
    rateLimit,
    logger: pino({ level: 'warn' }),
  });
}

export function register(program: Command): void {
  program
    .command('mock-api')
    .description(
      'run the Tuzhan platform simulator (batchAdd, token endpoint, faults) until stopped; with isMatching: true only the customers of --registry match',
    )
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--token <token>', 'static X-Token the simulator accepts')
    .option('--app-id <id>', 'app id accepted by the token endpoint')
    .option('--app-secret <secret>', 'app secret accepted by the token endpoint')
    .option(
      '--registry <file>',
      'JSON array of platform customers {thirdId?, phone?, openid?, unionid?}: the only ones a request with isMatching: true matches (without it, every such row fails)',
    )
    .option('--token-ttl <seconds>', 'validity of issued tokens', '7200')
    .option(
      '--rate-limit <n>',
      'a sustained quota: batchAdd requests per second past which it answers 429 with Retry-After (0: none)',
    )
    .addHelpText(
      'after',
      `
Besides batchAdd and the token endpoint it serves GET /__sim/groups?thirdId=... (a
customer's groups), GET /__sim/stats, POST /__sim/faults (latency, errors, 429s, timeouts,
the quota: {"rateLimit": 2}) and POST /__sim/reset.

Examples:
  tuzhan-cdc mock-api --listen 127.0.0.1:8080 --token dev-token
  tuzhan-cdc mock-api --listen 0.0.0.0:8080 --app-id demo --app-secret s3cret --token-ttl 60
  tuzhan-cdc mock-api --token dev-token --registry customers.json   # isMatching: only these match
  tuzhan-cdc mock-api --token dev-token --rate-limit 5               # 5 requests a second, then 429`,
    )
    .action(async (o: MockApiOptions) => {
      const sim = await startMockApi(o);
      console.log(`mock-api listening on ${sim.url}`);
      // The trap of a first try: the example config's memberships match (isMatching: true), and an
      // empty registry matches nobody.
      if (o.registry === undefined)
        console.log(
          'no --registry: requests with isMatching: true match no customer, so each of their rows fails ("no customer matches the row"); give --registry customers.json to list the customers the platform knows',
        );
      let stopping = false;
      const stop = (): void => {
        if (stopping) process.exit(1); // a second signal forces
        stopping = true;
        sim.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', stop).on('SIGTERM', stop);
    });
}
