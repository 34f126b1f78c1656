import { describe, expect, it } from 'vitest';
import { describeStartFailure } from '../../src/cli/start-failure.js';
import { BridgeError, ConfigError, SetupError } from '../../src/errors.js';

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('describeStartFailure', () => {
  it('waits out the delay for what a restart cannot fix, not for an unreachable database or platform', () => {
    const unreachable = new SetupError('DB_UNREACHABLE', 'cannot connect to postgres.url', {
      cause: pgError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:5432'),
    });
    const starting = new SetupError('DB_UNREACHABLE', 'cannot connect to postgres.url', {
      cause: pgError('57P03', 'the database system is starting up'),
    });
    const password = new SetupError('DB_UNREACHABLE', 'cannot connect to postgres.url', {
      cause: pgError('28P01', 'password authentication failed for user "cdc"'),
    });
    expect(describeStartFailure(unreachable).transient).toBe(true);
    expect(describeStartFailure(starting).transient).toBe(true);
    expect(describeStartFailure(password)).toMatchObject({
      transient: false,
      problems: [{ remedy: expect.stringContaining('user and password') as unknown }],
    });
    expect(
      describeStartFailure(new SetupError('PLATFORM_UNREACHABLE', 'the platform cannot be reached'))
        .transient,
    ).toBe(true);
    expect(
      describeStartFailure(new SetupError('PLATFORM_REFUSED', 'the platform refuses the credentials'))
        .transient,
    ).toBe(false);
    expect(describeStartFailure(new ConfigError(['postgres.url: is required']))).toMatchObject({
      transient: false,
      exitCode: 2,
      problems: [{ problem: 'invalid config: postgres.url: is required' }],
    });
  });

  it('names a missing privilege with the way to find every grant, and keeps each finding with its fix', () => {
    const denied = new BridgeError('MIGRATION_FAILED', 'migration 001 failed', {
      cause: pgError('42501', 'permission denied for database crm'),
    });
    expect(describeStartFailure(denied)).toMatchObject({
      code: 'INSUFFICIENT_PRIVILEGE',
      problems: [
        {
          problem: 'migration 001 failed: permission denied for database crm',
          remedy: expect.stringContaining('tuzhan-cdc check') as unknown,
        },
      ],
    });
    const checks = new SetupError('STARTUP_CHECK', 'a\nb', {
      findings: [
        { problem: 'wal_level: replica', remedy: 'ALTER SYSTEM SET wal_level = logical' },
        { problem: 'b' },
      ],
    });
    expect(describeStartFailure(checks).problems).toEqual([
      { problem: 'wal_level: replica', remedy: 'ALTER SYSTEM SET wal_level = logical' },
      { problem: 'b' },
    ]);
    expect(describeStartFailure(new TypeError('x is undefined'))).toMatchObject({
      code: 'UNEXPECTED',
      unexpected: true,
      transient: false,
      problems: [{ problem: 'unexpected error: x is undefined' }],
    });
  });
});
