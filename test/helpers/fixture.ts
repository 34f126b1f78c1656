/**
 * The setup most pipeline tests share: a platform simulator that records every batchAdd it
 * accepts, a test database with a schema, and a bridge a test starts and leaves to be stopped.
 *
 * Call it at the top of a describe block, before the file's own hooks. Before-hooks run in
 * registration order, so the file's own beforeAll/beforeEach already have `db` and `sim`; vitest
 * runs after-hooks in reverse order (sequence.hooks 'stack', its default), so a file's own
 * afterEach/afterAll (killing a spawned bridge, closing a second simulator) still runs before the
 * fixture stops `running` and drops the database.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/server.js';
import type { ApiRow, OptType } from '../../src/tuzhan/types.js';
import { quoteIdent } from '../../src/util/sql.js';
import { adminUrl, createTestDatabase, type TestDatabase } from './database.js';
import { CRM_SCHEMA, type TestBridge } from './pipeline.js';

export interface RecordedRequest {
  optType: OptType;
  rows: readonly ApiRow[];
}

export interface PipelineFixtureOptions {
  /**
   * 'test' (the default): a fresh database for each test, and the simulator reset before it.
   * 'file': one database (and an unreset simulator) for all the file's tests.
   */
  per?: 'test' | 'file';
  /** SQL run on the new database, one query after another (default: CRM_SCHEMA). */
  schema?: string | readonly string[];
  /**
   * The simulator's options (token default 'test-token'; an `onRows` given here is called after
   * the fixture records the request), or false for a file that starts simulators of its own.
   */
  simulator?: SimulatorOptions | false;
  /** How long the bridge left in `running` may take to stop after a test (TestBridge's default). */
  stopTimeoutMs?: number;
  /**
   * Roles the file creates (roles are server-wide): dropped after the file, once the database
   * holding the objects they own is gone.
   */
  roles?: readonly string[];
}

export interface PipelineFixture {
  readonly db: TestDatabase;
  readonly sim: Simulator;
  /** The batchAdd requests the simulator accepted since the test began; a test may clear it. */
  requests: RecordedRequest[];
  /** The bridge the test started, if any: stopped after the test. */
  running: TestBridge | undefined;
}

/** Registers the hooks (see the file's comment) and returns what the tests use. */
export function usePipelineFixture(dbLabel: string, o: PipelineFixtureOptions = {}): PipelineFixture {
  const perTest = (o.per ?? 'test') === 'test';
  const schema = typeof o.schema === 'string' ? [o.schema] : (o.schema ?? [CRM_SCHEMA]);
  let db: TestDatabase | undefined;
  let sim: Simulator | undefined;

  const fx: PipelineFixture = {
    requests: [],
    running: undefined,
    get db(): TestDatabase {
      if (!db) throw new Error(`no test database: usePipelineFixture('${dbLabel}') makes it in its hooks`);
      return db;
    },
    get sim(): Simulator {
      if (!sim) throw new Error(`no simulator: usePipelineFixture('${dbLabel}') was given simulator: false`);
      return sim;
    },
  };

  async function createDatabase(): Promise<void> {
    db = await createTestDatabase(dbLabel);
    for (const sql of schema) await db.query(sql);
  }
  async function dropDatabase(): Promise<void> {
    await db?.drop();
    db = undefined;
  }

  async function dropRoles(): Promise<void> {
    if (!o.roles?.length) return;
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    try {
      for (const role of o.roles) await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
    } finally {
      await admin.end();
    }
  }

  beforeAll(async () => {
    if (o.simulator !== false) {
      const onRows = o.simulator?.onRows;
      sim = await startSimulator({
        token: 'test-token',
        ...o.simulator,
        onRows: (optType, rows, at) => {
          fx.requests.push({ optType, rows });
          onRows?.(optType, rows, at);
        },
      });
    }
    if (!perTest) await createDatabase();
  });
  afterAll(async () => {
    await sim?.close();
    if (!perTest) await dropDatabase();
    await dropRoles();
  });
  beforeEach(async () => {
    fx.requests = [];
    if (perTest) {
      sim?.reset();
      await createDatabase();
    }
  });
  afterEach(async () => {
    const running = fx.running;
    fx.running = undefined;
    try {
      await running?.stop(o.stopTimeoutMs);
    } finally {
      if (perTest) await dropDatabase();
    }
  });
  return fx;
}
