/**
 * vitest globalSetup: one throwaway PostgreSQL (wal_level=logical) for the whole run. Each test file
 * then creates its own database with `createTestDatabase`, so slots and publications never collide.
 * The server is stopped and removed at the end, also after a failure or Ctrl-C.
 */
import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { startPostgres, type RunningPostgres } from '../../src/throwaway/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgKind: string;
    /** The server's major (e.g. 17): TUZHAN_TEST_PG_MAJOR's, when set. */
    pgMajor: number;
  }
}

let server: RunningPostgres | undefined;

async function serverMajor(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    return Math.floor(Number(rows[0]?.v) / 10000);
  } finally {
    await client.end();
  }
}

async function stop(): Promise<void> {
  const s = server;
  server = undefined;
  await s?.stop().catch((err: unknown) => console.error('stopping test PostgreSQL failed:', err));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  server = await startPostgres({ log: (line) => console.error(`[test-harness] ${line}`) });
  console.error(
    `[test-harness] PostgreSQL (${server.kind}, ${server.version}) at ${server.url.replace(/:[^:@/]*@/, ':***@')}`,
  );
  project.provide('pgAdminUrl', server.url);
  project.provide('pgKind', server.kind);
  project.provide('pgMajor', await serverMajor(server.url));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void stop().finally(() => process.exit(130));
    });
  }
  return stop;
}
