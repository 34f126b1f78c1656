/**
 * Per-key ordering for requests (docs/design.md, "Coalescing and batching"): a task names the resources it touches (source
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

/** A scheduled task as the resources it names remember it. */
interface Tail {
  done: Promise<void>;
  finished: boolean;
  /** The last schedule() that counted this task as a dependency (dedupes without a Set). */
  seenBy: number;
}

export class OrderedScheduler {
  /**
   * The last task on each resource, by lane and name. A finished task's entries stay until a
   * sweep: deleting them one by one as each task ends made the maps shrink and grow again with
   * every request (a rehash each time), which cost more than the bookkeeping it saved.
   */
  private readonly tails = new Map<string, Map<string, Tail>>();
  /** Entries in `tails`, and those that name an unfinished task (an upper bound). */
  private entries = 0;
  private live = 0;
  private stamp = 0;
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
    let finish!: () => void;
    const tail: Tail = {
      done: new Promise<void>((resolve) => (finish = resolve)),
      finished: false,
      seenBy: 0,
    };
    const stamp = ++this.stamp;
    const deps: Array<Promise<void>> = [];
    // One pass: each resource's previous task becomes a dependency, and this task its last.
    const { lanes, names } = resources;
    let laneName: string | undefined;
    let lane: Map<string, Tail> | undefined;
    for (let i = 0; i < lanes.length; i++) {
      const l = lanes[i] as string;
      if (l !== laneName || lane === undefined) {
        laneName = l;
        lane = this.tails.get(l);
        if (!lane) this.tails.set(l, (lane = new Map()));
      }
      const name = names[i] as string;
      const prev = lane.get(name);
      if (prev === undefined) this.entries += 1;
      else if (prev !== tail && !prev.finished && prev.seenBy !== stamp) {
        prev.seenBy = stamp;
        deps.push(prev.done);
      }
      lane.set(name, tail);
    }
    this.live += lanes.length;
    this.running += 1;
    const result = (async () => {
      if (deps.length) await Promise.all(deps);
      return options.direct ? task() : (this.queue.add(releasing(task)) as Promise<T>);
    })();
    const settle = (): void => {
      tail.finished = true;
      finish();
      this.live -= lanes.length;
      if (this.entries > 2 * this.live + SWEEP_SLACK) this.sweep();
      this.running -= 1;
      if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    result.then(settle, settle);
    return result;
  }

  /** Resource entries remembered (finished tasks' included until a sweep). */
  get trackedResources(): number {
    return this.entries;
  }

  /** Resolves when every task scheduled so far on these resources has finished. */
  async settled(list: ResourceList): Promise<void> {
    const { lanes, names } = resourcesOf(list);
    const deps = new Set<Promise<void>>();
    for (let i = 0; i < lanes.length; i++) {
      const t = this.tails.get(lanes[i] as string)?.get(names[i] as string);
      if (t && !t.finished) deps.add(t.done);
    }
    await Promise.all(deps);
  }

  /** Resolves when no task is scheduled or running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Forgets the resources of finished tasks (amortized: runs when they outnumber the live ones). */
  private sweep(): void {
    let entries = 0;
    for (const [laneName, lane] of this.tails) {
      for (const [name, t] of lane) if (t.finished) lane.delete(name);
      if (lane.size === 0) this.tails.delete(laneName);
      entries += lane.size;
    }
    this.entries = entries;
  }
}

/** Finished tasks' entries kept before a sweep, beyond twice the live ones. */
const SWEEP_SLACK = 20_000;

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
