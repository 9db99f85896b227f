/**
 * The control channel of a job's checkpoints (decision 003): core NATS
 * subjects `mr.ctl.<job>.<kind>`, JSON bodies. Commands go from the
 * coordinator to the nodes and carry the coordinator's leader epoch; a node
 * obeys no command from an epoch older than the newest it has seen
 * (fencing). Notices go from the nodes to the coordinator and carry the
 * generation they belong to.
 */
import type { NatsConnection, Subscription } from 'nats';
import type { TaskCheckpoint } from './manifest-store.js';

/**
 * Coordinator → nodes: run the job under `generation`, restored from
 * `checkpoint` (0: from scratch), each node the tasks `assignment` gives it.
 */
export interface RunCommand {
  readonly leaderEpoch: number;
  readonly generation: number;
  readonly checkpoint: number;
  /** Task id → the node that runs it in this generation. */
  readonly assignment: Readonly<Record<string, string>>;
}

/** Coordinator → nodes: source tasks seal checkpoint `checkpoint` now. */
export interface TriggerCommand {
  readonly leaderEpoch: number;
  readonly generation: number;
  readonly checkpoint: number;
}

/** Coordinator → nodes: `checkpoint` is committed; publish its staged sink outputs. */
export interface CommittedNotice {
  readonly leaderEpoch: number;
  readonly generation: number;
  readonly checkpoint: number;
}

/** Node → coordinator: a task sealed `checkpoint` and uploaded its snapshot. */
export interface TaskAck extends TaskCheckpoint {
  readonly generation: number;
  readonly checkpoint: number;
  readonly task: string;
}

/** Node → coordinator: these tasks run under `generation`. */
export interface ReadyNotice {
  readonly generation: number;
  readonly tasks: readonly string[];
}

/** Node → coordinator: a task of `generation` failed; the job must roll back. */
export interface FailedNotice {
  readonly generation: number;
  readonly task: string;
  readonly error: string;
}

/**
 * Node → coordinator, every `heartbeatMs`: this node can run the job's
 * tasks and is in `generation` (0: waiting for its first run). A coordinator
 * learns the jobs it coordinates and their nodes from these, starts a new run
 * when a node joins, and takes a node silent for `memberTimeoutMs` for dead.
 */
export interface HelloNotice {
  readonly node: string;
  /** New at every start of the job on the node: a changed one means the node restarted. */
  readonly instance: string;
  readonly generation: number;
  /** Every task of the job. */
  readonly tasks: readonly string[];
  /** Tasks that read an internal stream, with that stream and subject (trimmed after commits). */
  readonly internalInputs: readonly { readonly task: string; readonly stream: string; readonly subject: string }[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly heartbeatMs: number;
  readonly memberTimeoutMs: number;
}

/** Node → coordinator: this node stops running the job (graceful shutdown). */
export interface LeaveNotice {
  readonly node: string;
}

export interface ControlMessages {
  run: RunCommand;
  trigger: TriggerCommand;
  committed: CommittedNotice;
  ack: TaskAck;
  ready: ReadyNotice;
  failed: FailedNotice;
  hello: HelloNotice;
  leave: LeaveNotice;
}

export type ControlKind = keyof ControlMessages;

export function controlSubject(job: string, kind: ControlKind): string {
  return `mr.ctl.${job}.${kind}`;
}

/** Request (any client) → the coordinator: take a savepoint of the job now. */
export interface SavepointRequest {
  readonly name: string;
}

/** The coordinator's reply to a {@link SavepointRequest}. */
export type SavepointReply =
  | { readonly ok: true; readonly savepoint: { readonly name: string; readonly checkpoint: number; readonly tasks: number } }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** Where savepoint requests for `job` go (request/reply, answered by the coordinator). */
export function savepointSubject(job: string): string {
  return `mr.ctl.${job}.savepoint`;
}

/** Every job's hello subject: what a coordinator listens on to learn the jobs. */
export const ALL_HELLOS = controlSubject('*', 'hello');

/** The job of a control subject. */
export function jobOfControlSubject(subject: string): string {
  return subject.split('.')[2] ?? '';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Subscribes to JSON messages on `subject` (wildcards allowed); a bad one, or a throwing handler, goes to `onError`. */
export function subscribeJson<T>(
  nc: NatsConnection,
  subject: string,
  handler: (message: T, subject: string) => void,
  onError: (err: unknown) => void,
): Subscription {
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return onError(err);
      try {
        handler(JSON.parse(decoder.decode(msg.data)) as T, msg.subject);
      } catch (cause) {
        onError(cause);
      }
    },
  });
}

/** Typed publish/subscribe on one job's control subjects. */
export class ControlChannel {
  private readonly subs: Subscription[] = [];

  constructor(
    private readonly nc: NatsConnection,
    readonly job: string,
  ) {}

  send<K extends ControlKind>(kind: K, message: ControlMessages[K]): void {
    if (this.nc.isClosed()) return;
    this.nc.publish(controlSubject(this.job, kind), encoder.encode(JSON.stringify(message)));
  }

  /** Calls `handler` for each message of `kind`; a malformed one is passed to `onError`. */
  on<K extends ControlKind>(kind: K, handler: (message: ControlMessages[K]) => void, onError: (err: unknown) => void): void {
    this.subs.push(subscribeJson<ControlMessages[K]>(this.nc, controlSubject(this.job, kind), handler, onError));
  }

  close(): void {
    for (const sub of this.subs.splice(0)) sub.unsubscribe();
  }
}
