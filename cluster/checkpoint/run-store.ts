/**
 * The generation of each job: its run counter, bumped with compare-and-set
 * in JetStream KV each time the job (re)starts from a checkpoint. Records
 * carry it, so what an aborted run wrote after the checkpoint is ignored
 * downstream; it must therefore never repeat, whoever leads.
 */
import type { JetStreamClient, KV } from 'nats';
import { isWrongLastSequence, translateNatsError } from '../transport/nats-errors.js';

export const DEFAULT_RUN_BUCKET = 'millrace_runs';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class RunStore {
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: { bucket?: string } = {}): Promise<RunStore> {
    const bucket = options.bucket ?? DEFAULT_RUN_BUCKET;
    try {
      return new RunStore(await js.views.kv(bucket, { history: 1 }));
    } catch (err) {
      throw translateNatsError(err, `cannot open run bucket "${bucket}"`);
    }
  }

  /** The job's current generation, 0 before its first run. */
  async current(job: string): Promise<number> {
    const entry = await this.kv.get(job);
    return entry && entry.operation === 'PUT' ? Number(decoder.decode(entry.value)) : 0;
  }

  /** Starts the job's next run: returns its generation, higher than any before. */
  async next(job: string): Promise<number> {
    for (;;) {
      const entry = await this.kv.get(job);
      const current = entry && entry.operation === 'PUT' ? Number(decoder.decode(entry.value)) : 0;
      const next = encoder.encode(String(current + 1));
      try {
        if (entry) await this.kv.update(job, next, entry.revision);
        else await this.kv.create(job, next);
        return current + 1;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw translateNatsError(err, `cannot start a new run of job "${job}"`);
      }
    }
  }
}
