/**
 * The generation of each job: its run counter, bumped with compare-and-set
 * in JetStream KV each time the job (re)starts from a checkpoint. Records
 * carry it, so what an aborted run wrote after the checkpoint is ignored
 * downstream; it must therefore never repeat, whoever leads. With it, the
 * nodes the run was assigned to: a new leader starts as soon as all of them
 * have said hello.
 */
import type { JetStreamClient, KV } from 'nats';
import { isWrongLastSequence, translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';

export const DEFAULT_RUN_BUCKET = 'millrace_runs';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A job's run as stored: `{"generation":7,"nodes":["a","b"]}` (a bare number from before nodes were kept). */
export interface RunRecord {
  readonly generation: number;
  readonly nodes: readonly string[];
}

function decode(value: Uint8Array): RunRecord {
  const text = decoder.decode(value);
  if (/^\d+$/.test(text)) return { generation: Number(text), nodes: [] };
  const { generation, nodes } = JSON.parse(text) as RunRecord;
  return { generation, nodes: Array.isArray(nodes) ? nodes : [] };
}

export interface RunStoreOptions extends ReplicasOption {
  /** @default {@link DEFAULT_RUN_BUCKET} (`'millrace_runs'`) */
  readonly bucket?: string;
}

export class RunStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the run bucket, creating it (with `options.replicas` copies) when it does not exist. */
  static async open(js: JetStreamClient, options: RunStoreOptions = {}): Promise<RunStore> {
    const bucket = options.bucket ?? DEFAULT_RUN_BUCKET;
    const replicas = replicasOf(options.replicas);
    try {
      return new RunStore(await js.views.kv(bucket, { history: 1, replicas }));
    } catch (err) {
      throw translateNatsError(err, `cannot open run bucket "${bucket}"`);
    }
  }

  /** The job's current run: its generation (0 before the first) and the nodes it was assigned to. */
  async current(job: string): Promise<RunRecord> {
    const entry = await this.get(job);
    return entry ? decode(entry.value) : { generation: 0, nodes: [] };
  }

  /** Starts the job's next run on `nodes`: returns its generation, higher than any before. */
  async next(job: string, nodes: readonly string[]): Promise<number> {
    for (;;) {
      const entry = await this.get(job);
      const generation = (entry ? decode(entry.value).generation : 0) + 1;
      const value = encoder.encode(JSON.stringify({ generation, nodes } satisfies RunRecord));
      try {
        if (entry) await this.kv.update(job, value, entry.revision);
        else await this.kv.create(job, value);
        return generation;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw translateNatsError(err, `cannot start a new run of job "${job}"`);
      }
    }
  }

  private async get(job: string) {
    try {
      const entry = await this.kv.get(job);
      return entry && entry.operation === 'PUT' ? entry : undefined;
    } catch (err) {
      throw translateNatsError(err, `cannot read the run of job "${job}"`);
    }
  }
}
