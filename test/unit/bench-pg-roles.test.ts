import { describe, expect, it } from 'vitest';
import type { ProcTimes } from '../../bench/common.js';
import { perRowRoles, pgRoleSplit, roleOf, type Backends } from '../../bench/pg-roles.js';

const PM = 100;
const proc = (
  seconds: number,
  ppid: number,
  title?: string,
  childSeconds = 0,
  comm = 'postgres',
): ProcTimes => ({
  comm,
  seconds,
  ppid,
  childSeconds,
  ...(title === undefined ? {} : { title }),
});

describe('the bench: PostgreSQL CPU by process role', () => {
  it('names a role from pg_stat_activity first, else from the process title', () => {
    const bridge = { type: 'client backend', app: 'tuzhan-cdc' };
    expect(roleOf(bridge, '', 'tuzhan-cdc')).toBe('bridgeBackends');
    expect(roleOf({ type: 'client backend', app: 'tuzhan-cdc leader' }, '', 'tuzhan-cdc')).toBe(
      'bridgeBackends',
    );
    expect(roleOf({ type: 'client backend', app: 'bench' }, '', 'tuzhan-cdc')).toBe('benchBackends');
    expect(roleOf(undefined, 'postgres: walsender postgres 127.0.0.1(35698) idle', 'x')).toBe('walsender');
    expect(roleOf(undefined, 'postgres: background writer', 'x')).toBe('bgwriter');
    expect(roleOf(undefined, 'postgres: autovacuum worker bench_throughput', 'x')).toBe('autovacuum');
    expect(roleOf(undefined, 'postgres: walwriter', 'x')).toBe('walwriter');
    expect(roleOf(undefined, 'postgres: checkpointer', 'x')).toBe('checkpointer');
    // A client backend the activity view no longer lists: a client, but whose is unknown.
    expect(roleOf(undefined, 'postgres: postgres bench 127.0.0.1(4242) idle', 'tuzhan-cdc')).toBe(
      'benchBackends',
    );
    expect(roleOf(undefined, '/usr/lib/postgresql/15/bin/postgres -D /tmp/x/data', 'x')).toBe(
      'otherBackground',
    );
    expect(roleOf(undefined, 'postgres: logical replication launcher', 'x')).toBe('otherBackground');
  });

  it('splits the server by role, counts the children reaped in the phase, and keeps other servers apart', () => {
    const before = new Map<number, ProcTimes>([
      [PM, proc(0.5, 1, '/usr/bin/postgres -D d', 1.0)],
      [101, proc(0, PM, 'postgres: walsender postgres 127.0.0.1(1) idle')],
      [102, proc(2.0, PM, 'postgres: postgres db 127.0.0.1(2) idle')],
      [103, proc(0.1, PM, 'postgres: postgres db 127.0.0.1(3) idle')],
      [104, proc(3.0, PM, 'postgres: checkpointer')],
      // An autovacuum worker that ends during the phase, having used 0.2 s before it.
      [105, proc(0.2, PM, 'postgres: autovacuum worker db')],
      [200, proc(5.0, 199, 'postgres: walwriter')],
      [300, proc(9.0, 1, undefined, 0, 'node')],
    ]);
    const after = new Map<number, ProcTimes>([
      [PM, proc(0.6, 1, '/usr/bin/postgres -D d', 1.8)],
      [101, proc(1.5, PM, 'postgres: walsender postgres 127.0.0.1(1) idle')],
      [102, proc(4.5, PM, 'postgres: postgres db 127.0.0.1(2) idle')],
      [103, proc(0.3, PM, 'postgres: postgres db 127.0.0.1(3) idle')],
      [104, proc(3.25, PM, 'postgres: checkpointer')],
      [106, proc(0.4, PM, 'postgres: walwriter')],
      [200, proc(7.0, 199, 'postgres: walwriter')],
      [300, proc(19.0, 1, undefined, 0, 'node')],
    ]);
    const known: Backends = new Map([
      [102, { type: 'client backend', app: 'tuzhan-cdc' }],
      [103, { type: 'client backend', app: 'bench' }],
    ]);
    const split = pgRoleSplit(before, after, PM, known);
    // Hand-computed: each process's difference; the reaped child's 0.8 s less its earlier 0.2 s.
    expect(split.walsender).toBeCloseTo(1.5);
    expect(split.bridgeBackends).toBeCloseTo(2.5);
    expect(split.benchBackends).toBeCloseTo(0.2);
    expect(split.checkpointer).toBeCloseTo(0.25);
    expect(split.walwriter).toBeCloseTo(0.4);
    expect(split.otherBackground).toBeCloseTo(0.1);
    expect(split.ended).toBeCloseTo(0.6);
    expect(split.autovacuum).toBe(0);
    expect(split.bgwriter).toBe(0);
    expect(split.server).toBeCloseTo(1.5 + 2.5 + 0.2 + 0.25 + 0.4 + 0.1 + 0.6);
    expect(split.otherServers).toBeCloseTo(2.0);
    expect(perRowRoles(split, 100_000).walsender).toBe(15);
    expect(perRowRoles(split, 100_000).ended).toBe(6);
  });
});
