/**
 * vitest globalSetup: one throwaway PostgreSQL (wal_level=logical) for the whole run. Each test file
 * then creates its own database with `createTestDatabase`, so slots and publications never collide.
 * The server is stopped and removed at the end, also after a failure or Ctrl-C.
 */
import type { TestProject } from 'vitest/node';
import { startPostgres, type RunningPostgres } from '../../src/throwaway/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgKind: string;
  }
}

let server: RunningPostgres | undefined;

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
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void stop().finally(() => process.exit(130));
    });
  }
  return stop;
}
