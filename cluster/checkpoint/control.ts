/**
 * The control channel of a job's checkpoints (decision 003): core NATS
 * subjects `mr.ctl.<job>.<kind>`, JSON bodies. Commands go from the
 * coordinator to the nodes and carry the coordinator's leader epoch; a node
 * obeys no command from an epoch older than the newest it has seen
 * (fencing). Notices go from the nodes to the coordinator and carry the
 * generation they belong to. Which node runs which task is not sent here:
 * it is the job's assignment record in KV (cluster/assignment/), and which
 * nodes are alive is the membership bucket (cluster/membership/).
 */
import type { NatsConnection, Subscription } from 'nats';
import type { TaskCheckpoint } from './manifest-store.js';

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

/** Node → coordinator: these tasks run under `generation`, as assignment record `version` has them. */
export interface ReadyNotice {
  readonly generation: number;
  readonly version: number;
  readonly tasks: readonly string[];
}

/**
 * Node → coordinator, for a handoff record (`version`): `tasks` will stop
 * right after sealing the handoff's checkpoint; `refused` cannot (not
 * running here, or past it).
 */
export interface ArmedNotice {
  readonly generation: number;
  readonly version: number;
  readonly node: string;
  readonly tasks: readonly string[];
  readonly refused: readonly string[];
}

/** Node → coordinator: a task of `generation` failed; the job must roll back. */
export interface FailedNotice {
  readonly generation: number;
  readonly task: string;
  readonly error: string;
}

export interface ControlMessages {
  trigger: TriggerCommand;
  committed: CommittedNotice;
  ack: TaskAck;
  ready: ReadyNotice;
  armed: ArmedNotice;
  failed: FailedNotice;
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
