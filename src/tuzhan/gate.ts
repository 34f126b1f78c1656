/**
 * While the platform refuses the credentials, one request at a time asks it (./client.ts): the
 * others wait at this gate until that one is answered or gives up.
 */
import { RequestAbortedError } from './transport.js';

/** The credentials gate: opened when its owner's request is answered or gives up. */
export class Gate {
  private readonly done: Promise<void>;
  open: () => void = () => {};

  constructor(readonly owner: symbol) {
    this.done = new Promise<void>((resolve) => (this.open = resolve));
  }

  /** Resolves when the gate opens; rejects with RequestAbortedError when `signal` aborts first. */
  opened(signal: AbortSignal | undefined): Promise<void> {
    if (!signal) return this.done;
    if (signal.aborted) return Promise.reject(new RequestAbortedError());
    return new Promise<void>((resolve, reject) => {
      const abort = (): void => reject(new RequestAbortedError());
      signal.addEventListener('abort', abort, { once: true });
      void this.done.then(() => {
        signal.removeEventListener('abort', abort);
        resolve();
      });
    });
  }
}
