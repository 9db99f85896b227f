/**
 * What a task needs from outside the node's engine: its mailbox and a way to
 * publish. `cluster/` implements both on NATS JetStream; unit tests may use
 * in-memory ones.
 */

/** One delivered record: structurally a subset of nats.js's `JsMsg`. */
export interface InputMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers?: { get(name: string): string; has(name: string): boolean } | undefined;
  readonly info: {
    readonly timestampNanos: number;
    /** The consumer's delivery counter: +1 per message delivered, so a jump shows a message lost in transit. */
    readonly deliverySequence?: number;
  };
  /** Acknowledges this message and, under ack-all, every earlier one. */
  ack(): void;
}

export interface TaskInput {
  readonly messages: AsyncIterable<InputMessage>;
  /** Ends the iteration of `messages`. */
  stop(): void;
}

/** Opens a task's mailbox from stream sequence `startSeq`. */
export type InputFactory = (startSeq: number) => Promise<TaskInput>;

/** Publishes a task's outputs with bounded outstanding acknowledgements. */
export interface TaskOutput {
  publish(subject: string, data: Uint8Array, key: string, timestamp: number, msgId: string): void;
  /** Publishes barrier `checkpoint` (an empty record with the barrier header) after everything published so far. */
  barrier(subject: string, checkpoint: number, msgId: string): void;
  readonly outstanding: number;
  readonly window: number;
  /** Resolves when there is room under the window again. */
  capacity(): Promise<void>;
  /** A mark covering everything published so far. */
  mark(): number;
  /** Resolves when everything published before `mark` is durably acknowledged. */
  flushed(mark: number): Promise<void>;
  /**
   * The message ids starting with `prefix` already stored under `subjects`
   * since `since` (ms since the epoch), where the destination's duplicate
   * window no longer covers `since`. Lets a transactional sink publish a
   * committed checkpoint again without storing copies. Without it, the task
   * relies on the duplicate window.
   */
  storedIds?(query: { subjects: readonly string[]; prefix: string; since: number }): Promise<ReadonlySet<string>>;
  close(): void;
}

/** Receives records the task skips (undecodable, or a user function threw). The dead-letter stream plugs in here. */
export interface DeadLetterHandler {
  (letter: DeadLetter): void;
}

export interface DeadLetter {
  readonly job: string;
  readonly task: string;
  readonly stream: string;
  readonly subject: string;
  readonly seq: number;
  readonly data: Uint8Array;
  readonly headers: Record<string, string>;
  readonly error: Error & { code?: string };
  readonly operator: string | undefined;
}
