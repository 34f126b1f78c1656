/**
 * Cleaning up after a process that cannot clean up itself (SIGKILL, the OOM killer, a crashed test
 * worker). A throwaway PostgreSQL started with pg_ctl runs in a session of its own, so that a
 * Ctrl-C reaches only us and we stop it in order; but then nothing stops it when we die abruptly,
 * and its temp directory stays behind. So a small watcher process is started beside it: it holds
 * the read end of a pipe whose write end only we hold. When we die, however we die, the kernel
 * closes that end, the watcher reads end-of-file, shuts the server down (SIGQUIT to the
 * postmaster: PostgreSQL's immediate shutdown) and removes the directories. A normal stop
 * dismisses the watcher first. The watcher is detached (its own session), so the Ctrl-C or the
 * process-group kill that ends us does not end it before it has done its job.
 */
import { spawn } from 'node:child_process';

export interface OrphanGuard {
  /** The clean stop is ours: the watcher exits without touching anything. */
  dismiss(): void;
}

export interface GuardOptions {
  /** A PostgreSQL data directory: its postmaster (postmaster.pid) is shut down. */
  dataDir?: string;
  /** Directories to remove (after the server is down). */
  remove: string[];
}

// Plain JavaScript for `node -e`: no TypeScript loader in the watcher, and nothing to import.
const WATCHER = `
const fs = require('node:fs');
const o = JSON.parse(process.argv[1]);
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
let done = false;
function cleanUp() {
  if (done) return;
  done = true;
  if (o.dataDir) {
    try {
      const pid = Number(fs.readFileSync(o.dataDir + '/postmaster.pid', 'utf8').split('\\n')[0]);
      if (pid > 0 && alive(pid)) {
        process.kill(pid, 'SIGQUIT');
        for (const until = Date.now() + 10000; alive(pid) && Date.now() < until; ) pause(100);
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }
    } catch {}
  }
  for (const d of o.remove) { try { fs.rmSync(d, { recursive: true, force: true }); } catch {} }
  process.exit(0);
}
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.stdin.on('data', () => {});
process.stdin.on('end', cleanUp);
process.stdin.on('close', cleanUp);
process.stdin.on('error', cleanUp);
`;

/** Starts a watcher that cleans up after us if we die before `dismiss`. */
export function guardOrphans(options: GuardOptions): OrphanGuard {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // e.g. a TypeScript loader of the parent: the watcher needs none
  const child = spawn(process.execPath, ['-e', WATCHER, JSON.stringify(options)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    env,
  });
  child.on('error', () => {}); // no watcher: nothing worse than before
  child.stdin?.on('error', () => {});
  // Neither the watcher nor the idle pipe may keep our event loop alive.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return {
    dismiss() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
