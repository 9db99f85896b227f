/**
 * An in-memory `TaskOutput`: records every publish, and acknowledges them
 * as JetStream's PubAcks would — at once by default, or only when the test
 * says so (`hold()` / `release()`), or never (`fail()`), so a test can put a
 * task's commit exactly where it wants it.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import type { TaskOutput } from '../task/ports.js';

export interface MemoryOutputOptions {
  /** Unacknowledged publishes above which the task waits for `capacity()`. @default DEFAULT_OUTPUT_WINDOW */
  readonly window?: number;
}

export const DEFAULT_OUTPUT_WINDOW = 8192;

/** One publish as the task made it. */
export interface PublishedMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly key: string;
  readonly timestamp: number;
  /** The `Nats-Msg-Id` the task chose. */
  readonly msgId: string;
}

/** A barrier as the task published it. */
export interface PublishedBarrier {
  readonly subject: string;
  readonly checkpoint: number;
  readonly msgId: string;
  /** How many records were published before it. */
  readonly after: number;
}

export interface MemoryOutput extends TaskOutput {
  /** Every publish, in order. */
  readonly published: readonly PublishedMessage[];
  /** Every barrier, in order. */
  readonly barriers: readonly PublishedBarrier[];
  /** How many publishes (a prefix of `published`) are acknowledged. */
  readonly acknowledged: number;
  /** Stops acknowledging: later publishes stay outstanding and `flushed()` waits for them. */
  hold(): void;
  /** Acknowledges every publish so far and goes back to acknowledging at once. */
  release(): void;
  /** As a publisher that lost JetStream: `flushed()` and `capacity()` reject with `err`, `publish()` throws it. */
  fail(err: Error): void;
  readonly closed: boolean;
}

interface Waiter {
  readonly ready: () => boolean;
  resolve(): void;
  reject(err: unknown): void;
}

/** A fresh in-memory output that acknowledges every publish at once. */
export function memoryOutput(options: MemoryOutputOptions = {}): MemoryOutput {
  const window = options.window ?? DEFAULT_OUTPUT_WINDOW;
  if (!Number.isSafeInteger(window) || window < 1) throw new TypeError(`memoryOutput(): window must be an integer ≥ 1, got ${window}`);
  const published: PublishedMessage[] = [];
  const barriers: PublishedBarrier[] = [];
  let acknowledged = 0;
  let held = false;
  let failure: Error | undefined;
  let closed = false;
  let waiters: Waiter[] = [];

  const wake = () => {
    const still: Waiter[] = [];
    for (const w of waiters) {
      if (failure) w.reject(failure);
      else if (w.ready()) w.resolve();
      else still.push(w);
    }
    waiters = still;
  };
  const until = (ready: () => boolean): Promise<void> => {
    if (failure) return Promise.reject(failure);
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => waiters.push({ ready, resolve, reject }));
  };
  const fail = (err: Error) => {
    failure ??= err;
    wake();
  };

  return {
    publish(subject, data, key, timestamp, msgId) {
      if (failure) throw failure;
      published.push({ subject, data, key, timestamp, msgId });
      if (!held) acknowledged = published.length;
    },
    barrier(subject, checkpoint, msgId) {
      if (failure) throw failure;
      barriers.push({ subject, checkpoint, msgId, after: published.length });
    },
    barriers,
    get outstanding() {
      return published.length - acknowledged;
    },
    window,
    capacity: () => until(() => published.length - acknowledged < window),
    mark: () => published.length,
    flushed: (mark) => until(() => acknowledged >= mark),
    close() {
      closed = true;
      fail(millraceError(ErrorCodes.NODE_STOPPED, 'the output is closed'));
    },
    published,
    get acknowledged() {
      return acknowledged;
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
      acknowledged = published.length;
      wake();
    },
    fail,
    get closed() {
      return closed;
    },
  };
}
