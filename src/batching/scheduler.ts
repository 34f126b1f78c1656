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

/**
 * What a task touches: (lane, name) pairs. A lane is a namespace (`key:<source>`, `id:thirdId`), a
 * name a key or an identity value in it. Names are used as they are, so a request of 500 rows
 * builds no string per row to name its resources.
 */
export class Resources {
  readonly lanes: string[] = [];
  readonly names: string[] = [];

  add(lane: string, name: string): this {
    this.lanes.push(lane);
    this.names.push(name);
    return this;
  }
}

/** Resources, or plain names (all in one lane). */
export type ResourceList = Resources | readonly string[];

function resourcesOf(list: ResourceList): Resources {
  if (list instanceof Resources) return list;
  const r = new Resources();
  for (const name of list) r.add('', name);
  return r;
}

export class OrderedScheduler {
  /** The last task on each resource, by lane and name. */
  private readonly tails = new Map<string, Map<string, Promise<void>>>();
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
   * take a concurrency slot (local status writes that send nothing). A resource named twice is
   * taken once.
   */
  schedule<T>(list: ResourceList, task: () => Promise<T>, options: { direct?: boolean } = {}): Promise<T> {
    const resources = resourcesOf(list);
    const deps = this.tailsOf(resources);
    this.running += 1;
    const result = (async () => {
      if (deps.size) await Promise.all(deps);
      return options.direct ? task() : (this.queue.add(releasing(task)) as Promise<T>);
    })();
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    this.forEach(resources, (lane, name) => lane.set(name, done));
    void done.then(() => {
      this.forEach(resources, (lane, name) => {
        if (lane.get(name) === done) lane.delete(name);
      });
      this.running -= 1;
      if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    return result;
  }

  /** Resolves when every task scheduled so far on these resources has finished. */
  async settled(list: ResourceList): Promise<void> {
    await Promise.all(this.tailsOf(resourcesOf(list)));
  }

  /** Resolves when no task is scheduled or running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private tailsOf(resources: Resources): Set<Promise<void>> {
    const deps = new Set<Promise<void>>();
    this.forEach(resources, (lane, name) => {
      const t = lane.get(name);
      if (t) deps.add(t);
    });
    return deps;
  }

  /** Calls `fn` with each resource's lane map and name (lanes repeat in runs: looked up once a run). */
  private forEach(resources: Resources, fn: (lane: Map<string, Promise<void>>, name: string) => void): void {
    let laneName: string | undefined;
    let lane: Map<string, Promise<void>> | undefined;
    for (let i = 0; i < resources.lanes.length; i++) {
      const l = resources.lanes[i] as string;
      if (l !== laneName || lane === undefined) {
        laneName = l;
        lane = this.tails.get(l);
        if (!lane) this.tails.set(l, (lane = new Map()));
      }
      fn(lane, resources.names[i] as string);
    }
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
