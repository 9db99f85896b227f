/**
 * An in-memory task mailbox: the `InputFactory` port over an append-only
 * log, with the JetStream behaviour a task relies on — increasing stream
 * sequences, delivery from a start sequence, ack-all — and a way to tell
 * when the task has taken everything pushed so far.
 */
import type { InputFactory, InputMessage, TaskInput } from '../task/ports.js';

export interface MemoryInputOptions {
  /** Stream sequence of the first message pushed. @default 1 */
  readonly firstSeq?: number;
  /** Subject of a pushed message that names none. @default DEFAULT_INPUT_SUBJECT */
  readonly subject?: string;
  /** The clock that stamps a message's stream time (`info.timestampNanos`), in ms. @default Date.now */
  readonly clock?: () => number;
}

export const DEFAULT_INPUT_SUBJECT = 'mr.input.0';

/** One message to append to the log. */
export interface MemoryMessageInit {
  readonly data: Uint8Array;
  /** NATS headers, e.g. `{ 'Mr-Key': 'alice', 'Mr-Ts': '1700000000000' }`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** @default the input's `subject` */
  readonly subject?: string;
  /** The time the stream stored it, in ms. @default the input's clock */
  readonly storedAt?: number;
}

/** Why `idle()` resolved: the task waits for more, or its mailbox was stopped. */
export type InputIdleState = 'waiting' | 'stopped';

export interface MemoryInput {
  /** The port a `Task` opens its mailbox with; every open replaces the previous mailbox, as re-creating a durable consumer does. */
  readonly open: InputFactory;
  /** Appends a message; returns its stream sequence. */
  push(message: MemoryMessageInit): number;
  /** Every message pushed, in sequence order. */
  readonly log: readonly InputMessage[];
  /** The sequence passed to each `ack()` call, in call order. */
  readonly acks: readonly number[];
  /** The highest acknowledged sequence (ack-all acknowledges everything before it); 0 before any ack. */
  readonly ackFloor: number;
  /** The start sequence of each `open()`, in order. */
  readonly opens: readonly number[];
  /**
   * Resolves once the open mailbox asks for a message and none is left, so
   * every message pushed before has been taken by the task, or once the
   * mailbox is stopped.
   */
  idle(): Promise<InputIdleState>;
}

interface Mailbox extends TaskInput {
  readonly waiting: boolean;
  readonly stopped: boolean;
  /** Hands over messages pushed while the consumer waits. */
  deliver(): void;
}

/** A fresh, empty in-memory input. */
export function memoryInput(options: MemoryInputOptions = {}): MemoryInput {
  const firstSeq = options.firstSeq ?? 1;
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw new TypeError(`memoryInput(): firstSeq must be an integer ≥ 1, got ${firstSeq}`);
  const defaultSubject = options.subject ?? DEFAULT_INPUT_SUBJECT;
  const clock = options.clock ?? Date.now;
  const log: InputMessage[] = [];
  const acks: number[] = [];
  const opens: number[] = [];
  let ackFloor = 0;
  let current: Mailbox | undefined;
  let idleWaiters: ((state: InputIdleState) => void)[] = [];

  const settleIdle = (state: InputIdleState) => {
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w(state);
  };

  const mailbox = (startSeq: number): Mailbox => {
    let cursor = log.findIndex((m) => m.seq >= startSeq);
    if (cursor < 0) cursor = log.length;
    let stopped = false;
    let pending: ((r: IteratorResult<InputMessage>) => void) | undefined;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      pending?.({ done: true, value: undefined });
      pending = undefined;
      if (current === box) settleIdle('stopped');
    };
    const iterator: AsyncIterator<InputMessage> = {
      next() {
        if (stopped) return Promise.resolve({ done: true, value: undefined });
        if (cursor < log.length) return Promise.resolve({ done: false, value: log[cursor++]! });
        const next = new Promise<IteratorResult<InputMessage>>((resolve) => (pending = resolve));
        settleIdle('waiting');
        return next;
      },
      return() {
        stop();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
    const box: Mailbox = {
      messages: { [Symbol.asyncIterator]: () => iterator },
      stop,
      get waiting() {
        return pending !== undefined;
      },
      get stopped() {
        return stopped;
      },
      deliver() {
        if (!pending || cursor >= log.length) return;
        const resolve = pending;
        pending = undefined;
        resolve({ done: false, value: log[cursor++]! });
      },
    };
    return box;
  };

  return {
    open: async (startSeq) => {
      opens.push(startSeq);
      current?.stop();
      current = mailbox(startSeq);
      return current;
    },
    push(init) {
      const seq = (log.at(-1)?.seq ?? firstSeq - 1) + 1;
      const headers = memoryHeaders(init.headers ?? {});
      const storedAt = init.storedAt ?? clock();
      log.push({
        seq,
        subject: init.subject ?? defaultSubject,
        data: init.data,
        headers,
        info: { timestampNanos: storedAt * 1e6 },
        ack() {
          acks.push(seq);
          ackFloor = Math.max(ackFloor, seq);
        },
      });
      current?.deliver();
      return seq;
    },
    log,
    acks,
    get ackFloor() {
      return ackFloor;
    },
    opens,
    idle() {
      if (!current || current.stopped) return Promise.resolve('stopped');
      if (current.waiting) return Promise.resolve('waiting');
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

/**
 * Headers with nats.js `MsgHdrs` semantics where the task reads them: `get()`
 * of a missing header returns `''`, not `undefined`.
 */
function memoryHeaders(values: Readonly<Record<string, string>>): { get(name: string): string; has(name: string): boolean; keys(): string[] } {
  const copy = new Map(Object.entries(values));
  return {
    get: (name) => copy.get(name) ?? '',
    has: (name) => copy.has(name),
    keys: () => [...copy.keys()],
  };
}
