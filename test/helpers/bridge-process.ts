/** The bridge as a separate process (`tuzhan-cdc run`), for crash and shutdown tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, trackChild } from './cleanup.js';

export interface BridgeProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): Promise<number | string>;
}

/** Like cli.ts's: a config file in a temporary directory removed after the test (or file). */
export function writeConfigFile(yaml: string): string {
  const dir = tempDir('cfg');
  const file = join(dir, 'bridge.yaml');
  writeFileSync(file, yaml);
  return file;
}

export function spawnBridge(configFile: string, env: Record<string, string> = {}): BridgeProcess {
  // Stopped after the test if it is still running (e.g. the test failed before killing it).
  const child = trackChild(
    spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'run', '--config', configFile], {
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return {
    child,
    output: () => out,
    exited,
    kill(signal) {
      child.kill(signal);
      return exited;
    },
  };
}
