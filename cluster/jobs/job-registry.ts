/**
 * The jobs of the cluster in JetStream KV, key = job name: what the
 * coordinator needs to coordinate a job (its tasks, the internal inputs it
 * trims, its checkpoint timing) and what `millrace job list|describe`
 * shows. A node writes its job's entry when it starts running the job;
 * `millrace job cancel` marks it cancelled, and every node stops the job's
 * tasks. A node started with the job again submits it again.
 */
import type { JetStreamClient, KV, KvEntry } from 'nats';
import type { Logger } from 'pino';
import { translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';

export const DEFAULT_JOB_BUCKET = 'millrace_jobs';

export interface JobDescriptor {
  readonly job: string;
  /** Every task of the job, `<job>/<stage>/<partition>`. */
  readonly tasks: readonly string[];
  /** Tasks that read an internal stream, with that stream and subject (trimmed after commits). */
  readonly internalInputs: readonly { readonly task: string; readonly stream: string; readonly subject: string }[];
  /** The stages: what each reads and writes, and how many tasks it has. */
  readonly stages: readonly { readonly id: string; readonly input: string; readonly output: string; readonly tasks: number }[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Standby replicas per task (JobOptions.standbyReplicas); absent: 0. */
  readonly standbyReplicas?: number;
  /** `cancelled` by `millrace job cancel`: no node runs it until one submits it again. */
  readonly status: 'running' | 'cancelled';
  /** The node that last submitted or cancelled it, and when. */
  readonly updatedBy: string;
  readonly updatedAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class JobRegistry {
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: { bucket?: string } & ReplicasOption = {}): Promise<JobRegistry> {
    const bucket = options.bucket ?? DEFAULT_JOB_BUCKET;
    try {
      return new JobRegistry(await js.views.kv(bucket, { history: 1, replicas: replicasOf(options.replicas) }));
    } catch (err) {
      throw translateNatsError(err, `cannot open job bucket "${bucket}"`);
    }
  }

  /** Submits `descriptor` (status running), unless the same is there already. */
  async submit(descriptor: JobDescriptor): Promise<void> {
    const current = await this.get(descriptor.job);
    if (current && sameJob(current, descriptor) && current.status === 'running') return;
    await this.put(descriptor);
  }

  /** Marks `job` cancelled; false when no such job is registered. */
  async cancel(job: string, by: string): Promise<boolean> {
    const current = await this.get(job);
    if (!current) return false;
    await this.put({ ...current, status: 'cancelled', updatedBy: by, updatedAt: Date.now() });
    return true;
  }

  async get(job: string): Promise<JobDescriptor | undefined> {
    try {
      const entry = await this.kv.get(job);
      return entry && entry.operation === 'PUT' ? decode(entry) : undefined;
    } catch (err) {
      throw translateNatsError(err, `cannot read job "${job}"`);
    }
  }

  async list(): Promise<JobDescriptor[]> {
    const keys: string[] = [];
    try {
      // Every key first: nats.js drops the keys not yet taken once the server sent the last, so a get per key in the loop saw one job.
      for await (const key of await this.kv.keys()) keys.push(key);
    } catch (err) {
      throw translateNatsError(err, 'cannot list jobs');
    }
    const jobs: JobDescriptor[] = [];
    for (const key of keys) {
      const job = await this.get(key);
      if (job) jobs.push(job);
    }
    return jobs.sort((a, b) => a.job.localeCompare(b.job));
  }

  /** Calls `onJob` for every job entry now and for every later change; returns a stop function. */
  async watch(onJob: (job: JobDescriptor) => void, logger: Logger): Promise<() => void> {
    const iterator = await this.kv.watch();
    void (async () => {
      for await (const entry of iterator) {
        if (entry.operation !== 'PUT') continue;
        try {
          onJob(decode(entry));
        } catch (err) {
          logger.warn({ err, key: entry.key }, 'malformed job entry');
        }
      }
    })();
    return () => iterator.stop();
  }

  private async put(descriptor: JobDescriptor): Promise<void> {
    try {
      await this.kv.put(descriptor.job, encoder.encode(JSON.stringify(descriptor)));
    } catch (err) {
      throw translateNatsError(err, `cannot register job "${descriptor.job}"`);
    }
  }
}

function decode(entry: KvEntry): JobDescriptor {
  return JSON.parse(decoder.decode(entry.value)) as JobDescriptor;
}

/** Whether two descriptors describe the same job, whoever submitted them. */
function sameJob(a: JobDescriptor, b: JobDescriptor): boolean {
  const shape = (d: JobDescriptor) => JSON.stringify([d.tasks, d.internalInputs, d.stages, d.intervalMs, d.timeoutMs, d.standbyReplicas ?? 0]);
  return shape(a) === shape(b);
}
