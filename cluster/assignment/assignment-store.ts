/**
 * Each job's assignment of tasks to nodes in JetStream KV, key = job name,
 * written by the coordinator and watched by every node (decision 005). A
 * record is versioned twice: `generation` changes when the whole job
 * restarts from a checkpoint, `version` at every change, handoffs included.
 * Nodes obey no record of a leader epoch older than the newest they saw.
 */
import type { JetStreamClient, KV, KvEntry } from 'nats';
import type { Logger } from 'pino';
import { ErrorCodes, millraceError } from '../../errors.js';
import { isWrongLastSequence, translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';

export const DEFAULT_ASSIGNMENT_BUCKET = 'millrace_assignments';

export interface JobAssignment {
  readonly job: string;
  readonly leaderEpoch: number;
  /** The run: a new one restarts every task from `checkpoint`. */
  readonly generation: number;
  /** Bumped at every record of the job, across generations too. */
  readonly version: number;
  /** The checkpoint a task restores when it starts on a node: the run's, or the handoff's. */
  readonly checkpoint: number;
  /** Task → the node that runs it. */
  readonly tasks: Readonly<Record<string, string>>;
  /** Task → the nodes that keep a warm copy of its state (JobOptions.standbyReplicas); absent without standbys. */
  readonly standbys?: Readonly<Record<string, readonly string[]>>;
  /**
   * Node → the instance (process start) the record's tasks were given to. A
   * node that restarted since is not that instance: it obeys no record until
   * the coordinator's next run names its new instance.
   */
  readonly instances: Readonly<Record<string, string>>;
  /** The nodes the coordinator counted as able to take tasks when it wrote this. */
  readonly nodes: readonly string[];
  /**
   * While tasks move: each task here stops on its owner in `tasks` right
   * after sealing `checkpoint` (the owner answers `armed`), and the next
   * record starts it on the node given here from that checkpoint.
   */
  readonly handoff?: { readonly checkpoint: number; readonly to: Readonly<Record<string, string>> };
  /** Date.now() at the coordinator when written. */
  readonly writtenAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class AssignmentStore {
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: { bucket?: string } & ReplicasOption = {}): Promise<AssignmentStore> {
    const bucket = options.bucket ?? DEFAULT_ASSIGNMENT_BUCKET;
    try {
      return new AssignmentStore(await js.views.kv(bucket, { history: 1, replicas: replicasOf(options.replicas) }));
    } catch (err) {
      throw translateNatsError(err, `cannot open assignment bucket "${bucket}"`);
    }
  }

  /**
   * Writes `record` if the job's entry is still at `revision` (0: absent),
   * as the coordinator last read or wrote it; returns the new revision.
   * @throws MR_CHECKPOINT_CONFLICT when another coordinator wrote since
   */
  async publish(record: JobAssignment, revision: number): Promise<number> {
    const value = encoder.encode(JSON.stringify(record));
    try {
      return revision === 0 ? await this.kv.create(record.job, value) : await this.kv.update(record.job, value, revision);
    } catch (err) {
      if (isWrongLastSequence(err)) {
        throw millraceError(ErrorCodes.CHECKPOINT_CONFLICT, `another coordinator wrote the assignment of job "${record.job}" (epoch ${record.leaderEpoch} is stale)`, {
          details: { job: record.job, leaderEpoch: record.leaderEpoch, revision },
        });
      }
      throw translateNatsError(err, `cannot publish the assignment of job "${record.job}"`);
    }
  }

  /** The job's record and its revision (0 when there is none). */
  async current(job: string): Promise<{ record: JobAssignment | undefined; revision: number }> {
    try {
      const entry = await this.kv.get(job);
      if (!entry) return { record: undefined, revision: 0 };
      return { record: entry.operation === 'PUT' ? decode(entry) : undefined, revision: entry.revision };
    } catch (err) {
      throw translateNatsError(err, `cannot read the assignment of job "${job}"`);
    }
  }

  /** Calls `onRecord` with the job's current record and every later one; returns a stop function. */
  async watch(job: string, onRecord: (record: JobAssignment) => void, logger: Logger): Promise<() => void> {
    const iterator = await this.kv.watch({ key: job });
    void (async () => {
      for await (const entry of iterator) {
        if (entry.operation !== 'PUT') continue;
        try {
          onRecord(decode(entry));
        } catch (err) {
          logger.warn({ err, job }, 'malformed assignment record');
        }
      }
    })();
    return () => iterator.stop();
  }
}

function decode(entry: KvEntry): JobAssignment {
  return JSON.parse(decoder.decode(entry.value)) as JobAssignment;
}
