/**
 * What the console started (retries, backfills, approvals and rejections of held rows), as
 * GET /console/api/actions shows it: the last 20, each with its state and result. Work that takes
 * a while runs in the background, one of each kind at a time; the page polls its state.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import { redactText } from '../redact.js';

export type ActionKind = 'retry' | 'backfill' | 'approve' | 'reject';

export interface Action {
  id: number;
  kind: ActionKind;
  source: string;
  error?: string | null;
  state: 'running' | 'done' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  result?: unknown;
  message?: string;
}

/** Thrown when one of a kind is running already (the API answers 409). */
export class ActionBusy extends Error {}

export class ConsoleActions {
  private readonly list: Action[] = [];
  private next = 1;

  constructor(private readonly logger: Logger) {}

  /** The newest first, at most `n`. */
  newest(n = 20): Action[] {
    return this.list.slice(-n).reverse();
  }

  /** Records an action begun now. */
  record(a: Pick<Action, 'kind' | 'source' | 'error'>): Action {
    const action: Action = {
      id: this.next++,
      ...a,
      state: 'running',
      startedAt: new Date().toISOString(),
      finishedAt: null,
    };
    this.list.push(action);
    if (this.list.length > 20) this.list.shift();
    return action;
  }

  /** Marks an action ended, with its result or why it failed. */
  end(a: Action, outcome: { result: unknown } | { failed: string }): void {
    const finishedAt = new Date().toISOString();
    if ('result' in outcome) Object.assign(a, { state: 'done', finishedAt, result: outcome.result });
    else Object.assign(a, { state: 'failed', finishedAt, message: outcome.failed });
  }

  /** Starts `work` in the background as an action of its kind; one of a kind at a time. */
  start(a: Pick<Action, 'kind' | 'source' | 'error'>, work: () => Promise<unknown>): Action {
    if (this.list.some((x) => x.kind === a.kind && x.state === 'running'))
      throw new ActionBusy(`a ${a.kind} is already running; wait for it to finish`);
    const action = this.record(a);
    void work().then(
      (result) => this.end(action, { result }),
      (err: unknown) => {
        this.logger.warn({ err, source: a.source }, `console: ${a.kind} failed`);
        this.end(action, { failed: redactText(errorMessage(err)) });
      },
    );
    return action;
  }
}
