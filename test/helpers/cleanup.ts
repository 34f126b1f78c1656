/**
 * What a test leaves behind when it fails or times out: temporary directories (config files with
 * database URLs and tokens) and child processes (bridges, CLI commands, demos). Helpers register
 * them here; hooks registered by importing this module remove and kill them, also after a failure.
 *
 * Something created inside a test (or a beforeEach) is cleaned up after that test; something
 * created in a beforeAll, after the file. The hooks are registered on the importing file's root
 * suite (vitest runs each file with its own module graph), so the file's own afterEach/afterAll
 * run first and a graceful stop there still gets its chance.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach } from 'vitest';

/** Every test temporary directory starts with this, so CI can check that none is left. */
export const TEMP_PREFIX = 'tuzhan-';

/** How long a child may take to stop on SIGTERM before it is killed. */
const GRACE_MS = 10_000;

interface Owned {
  dirs: Set<string>;
  children: Set<ChildProcess>;
}

const perFile: Owned = { dirs: new Set(), children: new Set() };
const perTest: Owned = { dirs: new Set(), children: new Set() };
let inTest = false;

/** Creates a fresh directory `<tmpdir>/tuzhan-<label>-XXXXXX`, removed after the test (or file). */
export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${label}-`));
  (inTest ? perTest : perFile).dirs.add(dir);
  return dir;
}

/**
 * Stops `child` after the test (or file) that started it unless it has exited by then: SIGTERM,
 * so a demo or a bridge can remove what it made, then SIGKILL after a grace period.
 */
export function trackChild<C extends ChildProcess>(child: C): C {
  const owner = inTest ? perTest : perFile;
  owner.children.add(child);
  child.once('exit', () => owner.children.delete(child));
  return child;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), GRACE_MS);
  try {
    await gone;
  } finally {
    clearTimeout(timer);
  }
}

async function release(owned: Owned): Promise<void> {
  const children = [...owned.children];
  owned.children.clear();
  await Promise.all(children.map(stopChild));
  for (const dir of owned.dirs) rmSync(dir, { recursive: true, force: true });
  owned.dirs.clear();
}

beforeEach(() => {
  inTest = true;
});
afterEach(async () => {
  inTest = false;
  await release(perTest);
});
afterAll(async () => {
  await release(perTest);
  await release(perFile);
});
