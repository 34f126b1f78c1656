/**
 * Runs `tuzhan-cdc` from source in a child process, as an operator would, without blocking the
 * test's event loop (the simulator the CLI talks to runs in the test process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, trackChild } from './cleanup.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Settles when the process exits. */
  exited: Promise<CliResult>;
}

/** Starts the CLI; `env` entries set to undefined are removed from the inherited environment. */
export function startCli(args: readonly string[], env: Record<string, string | undefined> = {}): RunningCli {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, DEBUG: undefined, LOG_LEVEL: undefined, ...env })) {
    if (v !== undefined && v !== '') merged[k] = v;
  }
  const child = trackChild(
    spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      env: merged,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs the CLI to completion (killed after `timeoutMs`). */
export async function runCli(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 45_000,
): Promise<CliResult> {
  const running = startCli(args, env);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), timeoutMs);
  try {
    return await running.exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Writes a config file into a fresh temporary directory and returns its path. The directory (it
 * holds a database URL and a token) is removed after the test, or after the file when written in
 * a beforeAll.
 */
export function writeConfigFile(yaml: string): string {
  const dir = tempDir('cli');
  const file = join(dir, 'bridge.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** A stack frame line as Node prints them: never expected in an operator-facing error. */
export const STACK_FRAME = /^\s+at .*\(?.*:\d+:\d+\)?$/m;
