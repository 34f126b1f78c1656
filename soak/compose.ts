/**
 * The bridge as `docker compose` runs it (docker-compose.yml: `restart: unless-stopped`,
 * `stop_grace_period: 45s`, `--shutdown-timeout 30000`): a child process restarted a second after
 * any exit, stopped with SIGTERM and, past the grace period, SIGKILL. Every exit is recorded: one
 * the soak did not cause (the bridge giving up on its own) is a failure. Its log goes to a file; its
 * RSS is sampled from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export const GRACE_MS = 45_000;
const RESTART_DELAY_MS = 1000;

export interface Exit {
  /** Seconds into the run. */
  at: number;
  life: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The soak sent the signal (a fault, or the end). */
  asked: 'sigkill' | 'sigterm' | null;
}

export interface RssSample {
  /** Seconds into the run. */
  at: number;
  life: number;
  /** Seconds into this life. */
  age: number;
  mb: number;
}

export class Compose {
  readonly exits: Exit[] = [];
  readonly rss: RssSample[] = [];
  /** Log lines at warn and above, counted by message. */
  readonly warnings = new Map<string, number>();
  private child: ChildProcess | undefined;
  private life = 0;
  private bornAt = 0;
  private asked: Exit['asked'] = null;
  private down = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly sampler: NodeJS.Timeout;

  constructor(
    private readonly argv: readonly string[],
    private readonly logFile: string,
    private readonly startedAt: number,
    rssIntervalMs = 5000,
  ) {
    this.sampler = setInterval(() => this.sample(), rssIntervalMs);
  }

  private now(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get lives(): number {
    return this.life;
  }

  up(): void {
    this.down = false;
    if (this.child) return;
    this.life += 1;
    const life = this.life;
    this.bornAt = Date.now();
    this.asked = null;
    const child = spawn(process.execPath, [...this.argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    appendFileSync(this.logFile, `--- life ${life} (pid ${child.pid}) at ${this.now().toFixed(1)}s\n`);
    const onLine = (line: string): void => {
      appendFileSync(this.logFile, `${line}\n`);
      try {
        const o = JSON.parse(line) as { level?: string; msg?: string };
        if (o.level === 'warn' || o.level === 'error' || o.level === 'fatal')
          this.warnings.set(`${o.level}: ${o.msg}`, (this.warnings.get(`${o.level}: ${o.msg}`) ?? 0) + 1);
      } catch {
        // stderr's plain lines (signals, start failures) are in the file
      }
    };
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', onLine);
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', onLine);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exits.push({ at: this.now(), life, code, signal, asked: this.asked });
        this.child = undefined;
        // restart: unless-stopped
        if (!this.down) this.restartTimer = setTimeout(() => this.up(), RESTART_DELAY_MS);
        resolve();
      }),
    );
  }

  /** A fault: SIGKILL (also of a bridge draining after SIGTERM), then compose restarts it. */
  async kill(): Promise<boolean> {
    if (!this.child) return false;
    this.asked = 'sigkill';
    this.child.kill('SIGKILL');
    await this.exited;
    return true;
  }

  /** SIGTERM, SIGKILL after the grace period; compose restarts it unless `stay` is set. */
  async term(stay = false): Promise<boolean> {
    if (stay) this.down = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return false;
    this.asked = 'sigterm';
    child.kill('SIGTERM');
    const grace = setTimeout(() => child.kill('SIGKILL'), GRACE_MS);
    await this.exited;
    clearTimeout(grace);
    return true;
  }

  /** Resolves once a bridge process is running (after a restart delay, say). */
  async whenRunning(): Promise<void> {
    while (!this.child) await new Promise((r) => setTimeout(r, 100));
  }

  private sample(): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m)
        this.rss.push({
          at: this.now(),
          life: this.life,
          age: (Date.now() - this.bornAt) / 1000,
          mb: Number(m[1]) / 1024,
        });
    } catch {
      // gone meanwhile
    }
  }

  close(): void {
    clearInterval(this.sampler);
    clearTimeout(this.restartTimer);
    this.down = true;
    this.child?.kill('SIGKILL');
  }
}
