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
 * builds no string per row to name its resources; they are kept as runs of one lane (a request
 * names its keys, then its identities lane by lane), so the lane is stored once per run, and an
 * array sized up front (`capacity`) is filled without growing.
 */
export class Resources {
  /** Every name, in the order added. */
  readonly names: string[];
  /** One entry per run of names in the same lane: its lane, and where it ends in `names`. */
  readonly lanes: string[] = [];
  readonly ends: number[] = [];
  private n = 0;

  constructor(capacity = 0) {
    this.names = capacity > 0 ? new Array<string>(capacity) : [];
  }

  /** Names added. */
  get size(): number {
    return this.n;
  }

  add(lane: string, name: string): this {
    const runs = this.lanes.length;
    if (runs === 0 || this.lanes[runs - 1] !== lane) {
      this.lanes.push(lane);
      this.ends.push(0);
    }
    this.names[this.n++] = name;
    this.ends[this.lanes.length - 1] = this.n;
    return this;
  }
}

/** Resources, or plain names (all in one lane). */
export type ResourceList = Resources | readonly string[];

function resourcesOf(list: ResourceList): Resources {
  if (list instanceof Resources) return list;
  const r = new Resources(list.length);
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
    const { lanes, ends, names } = resources;
    const count = resources.size;
    let from = 0;
    for (let r = 0; r < lanes.length; r++) {
      const l = lanes[r] as string;
      let lane = this.tails.get(l);
      if (!lane) this.tails.set(l, (lane = new Map()));
      const to = ends[r] as number;
      for (let i = from; i < to; i++) {
        const name = names[i] as string;
        const prev = lane.get(name);
        if (prev === undefined) this.entries += 1;
        else if (prev !== tail && !prev.finished && prev.seenBy !== stamp) {
          prev.seenBy = stamp;
          deps.push(prev.done);
        }
        lane.set(name, tail);
      }
      from = to;
    }
    this.live += count;
    this.running += 1;
    const result = (async () => {
      if (deps.length) await Promise.all(deps);
      return options.direct ? task() : (this.queue.add(releasing(task)) as Promise<T>);
    })();
    const settle = (): void => {
      tail.finished = true;
      finish();
      this.live -= count;
      if (this.entries > 2 * this.live + SWEEP_SLACK) this.sweep();
      this.running -= 1;
      if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
    result.then(settle, settle);
    return result;
  }

  /**
   * Whether no unfinished task names any of these resources: a task on them would depend on
   * nothing. The dispatcher lets such rows join requests that have not started (fuller requests).
   */
  free(list: Resources): boolean {
    return this.unfinished(list, () => false);
  }

  /** Resource entries remembered (finished tasks' included until a sweep). */
  get trackedResources(): number {
    return this.entries;
  }

  /** Resolves when every task scheduled so far on these resources has finished. */
  async settled(list: ResourceList): Promise<void> {
    const deps = new Set<Promise<void>>();
    this.unfinished(resourcesOf(list), (t) => deps.add(t.done));
    await Promise.all(deps);
  }

  /**
   * Visits the unfinished task on each of these resources until `visit` returns false; whether
   * it visited them all.
   */
  private unfinished(list: Resources, visit: (t: Tail) => unknown): boolean {
    const { lanes, ends, names } = list;
    let from = 0;
    for (let r = 0; r < lanes.length; r++) {
      const lane = this.tails.get(lanes[r] as string);
      const to = ends[r] as number;
      for (let i = from; lane && i < to; i++) {
        const t = lane.get(names[i] as string);
        if (t && !t.finished && visit(t) === false) return false;
      }
      from = to;
    }
    return true;
  }

  /** Resolves when no task is scheduled or running. */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Forgets the resources of finished tasks (amortized: runs when they outnumber the live ones).
   * Each lane's live entries are copied into a new map and the old one dropped whole: deleting the
   * finished ones in place cost a third more (a hole per entry, then a rehash as the map refills).
   */
  private sweep(): void {
    let entries = 0;
    for (const [laneName, lane] of this.tails) {
      const live = new Map<string, Tail>();
      lane.forEach((t, name) => {
        if (!t.finished) live.set(name, t);
      });
      if (live.size === 0) this.tails.delete(laneName);
      else this.tails.set(laneName, live);
      entries += live.size;
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
