/**
 * Per-key ordering for requests (SPEC section 4): a task names the resources it touches (source
 * row keys, platform identities) and starts only after every earlier task sharing one of them has
 * finished, so changes to a key reach the API in commit order and two requests touching the same
 * key are never in flight at once. Tasks with disjoint resources run concurrently under
 * `concurrency` and an optional rate limit (p-queue).
 */
import PQueue from 'p-queue';

export interface SchedulerOptions {
  concurrency: number;
  /** Task starts per second; 0 means no limit. */
  ratePerSecond: number;
}

export class OrderedScheduler {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly queue: PQueue;
  private running = 0;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(options: SchedulerOptions) {
    this.queue = new PQueue({
      concurrency: Math.max(1, options.concurrency),
      ...(options.ratePerSecond > 0 ? { intervalCap: options.ratePerSecond, interval: 1000 } : {}),
    });
  }

  /** Tasks scheduled and not finished. */
  get pending(): number {
    return this.running;
  }

  /**
   * Runs `task` after the earlier tasks on the same resources. With `direct`, the task does not
   * take a concurrency slot (local status writes that send nothing).
   */
  schedule<T>(
    resources: readonly string[],
    task: () => Promise<T>,
    options: { direct?: boolean } = {},
  ): Promise<T> {
    const deps = new Set<Promise<void>>();
    for (const r of resources) {
      const t = this.tails.get(r);
      if (t) deps.add(t);
    }
    this.running += 1;
    const result = (async () => {
      if (deps.size) await Promise.all(deps);
      return options.direct ? task() : (this.queue.add(releasing(task)) as Promise<T>);
    })();
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    for (const r of resources) this.tails.set(r, done);
    void done.then(() => {
      for (const r of resources) if (this.tails.get(r) === done) this.tails.delete(r);
      this.running -= 1;
      if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    return result;
  }

  /** Resolves when every task scheduled so far on these resources has finished. */
  async settled(resources: readonly string[]): Promise<void> {
    const deps = new Set<Promise<void>>();
    for (const r of resources) {
      const t = this.tails.get(r);
      if (t) deps.add(t);
    }
    await Promise.all(deps);
  }

  /** Resolves when no task is scheduled or running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * A stand-in for `task` that lets go of it once started. p-queue keeps up to ~100 started tasks in
 * its array until it compacts (and never while it stays busy), so a request's closure, with
 * every row of the request, would outlive the request by minutes under a steady backlog.
 */
function releasing<T>(task: () => Promise<T>): () => Promise<T> {
  let pending: (() => Promise<T>) | undefined = task;
  return () => {
    const run = pending as () => Promise<T>;
    pending = undefined;
    return run();
  };
}
