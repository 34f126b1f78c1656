import { afterEach, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { runCli, type Registrar } from '../../src/cli/program.js';
import { CheckFailedError, ExitCode, withSignals } from '../../src/cli/common.js';
import { BridgeError, ConfigError } from '../../src/errors.js';

async function run(argv: string[], registrars: Registrar[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const code = await runCli(argv, registrars, { stderr: (t) => (stderr += t), debug: false });
  return { code, stderr };
}

/** A command that throws what it is given, and records the global options it saw. */
function thrower(name: string, make: () => unknown, seen: Record<string, unknown>[] = []): Registrar {
  return (program: Command) => {
    program.command(name).action((_opts, cmd: Command) => {
      seen.push(cmd.optsWithGlobals());
      const err = make();
      if (err !== undefined) throw err;
    });
  };
}

describe('CLI error handling', () => {
  it('prints one line per config problem and exits 2, without a stack', async () => {
    const r = await run(
      ['boom'],
      [
        thrower(
          'boom',
          () => new ConfigError(['tuzhan.token: required', 'batching.maxBatchSize: at most 500']),
        ),
      ],
    );
    expect(r.code).toBe(ExitCode.USAGE);
    expect(r.stderr).toBe(
      'tuzhan-cdc: invalid config: tuzhan.token: required\ntuzhan-cdc: invalid config: batching.maxBatchSize: at most 500\n',
    );
  });

  it('prints a BridgeError as one line with its cause, secrets removed; exits 1', async () => {
    const err = new BridgeError('DB_UNREACHABLE', 'cannot connect to postgres://cdc:hunter2@db/crm', {
      cause: new Error('connect ECONNREFUSED 10.0.0.1:5432'),
    });
    const r = await run(['boom'], [thrower('boom', () => err)]);
    expect(r.code).toBe(ExitCode.FAILURE);
    expect(r.stderr).toBe(
      'tuzhan-cdc: cannot connect to postgres://cdc:***@db/crm: connect ECONNREFUSED 10.0.0.1:5432\n',
    );
  });

  it('adds the stack with --verbose', async () => {
    const r = await run(['boom', '--verbose'], [thrower('boom', () => new BridgeError('X', 'bad thing'))]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe('tuzhan-cdc: bad thing');
    expect(r.stderr).toMatch(/\n\s+at /);
  });

  it('exits 3 when a check failed', async () => {
    const r = await run(['check'], [thrower('check', () => new CheckFailedError('2 checks failed'))]);
    expect(r).toEqual({ code: ExitCode.CHECK_FAILED, stderr: 'tuzhan-cdc: 2 checks failed\n' });
  });

  it('prints one line for an unexpected error, and its stack only with --verbose', async () => {
    const denied = () =>
      Object.assign(new Error("EACCES: permission denied, open '/run/ca.pem'"), { code: 'EACCES' });
    const r = await run(['boom'], [thrower('boom', denied)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "tuzhan-cdc: unexpected error: EACCES: permission denied, open '/run/ca.pem' (--verbose prints the stack trace)\n",
    );
    const verbose = await run(
      ['boom', '--verbose'],
      [thrower('boom', () => new TypeError('x is undefined'))],
    );
    expect(verbose.stderr).toMatch(
      /^tuzhan-cdc: unexpected error: x is undefined\nTypeError: x is undefined\n\s+at /,
    );
  });

  it('passes --config (default config/bridge.yaml) to commands, before or after the command name', async () => {
    const seen: Record<string, unknown>[] = [];
    const reg = thrower('ok', () => undefined, seen);
    expect((await run(['ok'], [reg])).code).toBe(0);
    expect((await run(['--config', 'a.yaml', 'ok'], [reg])).code).toBe(0);
    expect((await run(['ok', '--config', 'b.yaml'], [reg])).code).toBe(0);
    expect(seen.map((o) => o.config)).toEqual(['config/bridge.yaml', 'a.yaml', 'b.yaml']);
  });

  it('exits 2 on an unknown command or option, naming it in one line', async () => {
    const reg = thrower('ok', () => undefined);
    let r = await run(['okk'], [reg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("tuzhan-cdc: unknown command 'okk' (commands: ok); see --help\n");
    r = await run(['ok', '--frobnicate'], [reg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("tuzhan-cdc: unknown option '--frobnicate'\n");
  });
});

describe('withSignals', () => {
  let dispose: (() => void) | undefined;
  afterEach(() => dispose?.());

  function setup(stop: () => Promise<void>, timeoutMs = 1000): { exits: number[]; done: Promise<number> } {
    const exits: number[] = [];
    let resolveDone: (code: number) => void = () => {};
    const done = new Promise<number>((r) => (resolveDone = r));
    dispose = withSignals(stop, {
      timeoutMs,
      log: () => {},
      exit: (code) => {
        exits.push(code);
        resolveDone(code);
      },
    });
    return { exits, done };
  }

  it('stops on the first signal and exits 0 when stop resolves', async () => {
    let stopped = 0;
    const { done } = setup(async () => {
      stopped++;
    });
    process.emit('SIGTERM');
    expect(await done).toBe(0);
    expect(stopped).toBe(1);
  });

  it('exits 1 when stop takes longer than the timeout', async () => {
    const { done } = setup(() => new Promise(() => {}), 20);
    process.emit('SIGINT');
    expect(await done).toBe(1);
  });

  it('exits 130 at once on a second signal', async () => {
    const { exits } = setup(() => new Promise(() => {}), 5000);
    process.emit('SIGTERM');
    process.emit('SIGINT');
    expect(exits).toEqual([130]);
  });
});
