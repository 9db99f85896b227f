/**
 * How far each task of a job is behind its input: the `num_pending` of the
 * durable pull consumer it reads through (records of its subject the server
 * has not delivered yet). A task's consumer is named
 * `mr-<job>-<stage>-<partition>-g<generation>-v<version>` (cluster/job-runner.ts);
 * the one of the highest generation and version is the task's current one,
 * older ones are left by a stopped or killed owner until the server drops them.
 */
import type { ConsumerInfo, JetStreamManager } from 'nats';
import { taskConsumerPrefix } from '../transport/partition-consumer.js';
import { isStreamNotFound, translateNatsError } from '../transport/nats-errors.js';

/** A task and the stream it reads. */
export interface TaskInput {
  /** `<job>/<stage>/<partition>` */
  readonly task: string;
  readonly stream: string;
}

export interface TaskLag {
  /** The task's current consumer; null when it has none (not running, or its owner is gone). */
  readonly consumer: string | null;
  /** Records of its input not yet delivered to the task; null without a consumer. */
  readonly lag: number | null;
}

const NO_CONSUMER: TaskLag = { consumer: null, lag: null };

/** The lag of every task in `tasks` of job `job`, by task id. */
export async function taskLags(jsm: JetStreamManager, job: string, tasks: readonly TaskInput[]): Promise<Map<string, TaskLag>> {
  const out = new Map<string, TaskLag>();
  const streams = new Map<string, ConsumerInfo[]>();
  for (const { stream } of tasks) if (!streams.has(stream)) streams.set(stream, await consumersOf(jsm, stream));
  for (const { task, stream } of tasks) {
    // The job name is given: it may itself contain '/'.
    const [stage, partition] = task.slice(job.length + 1).split('/');
    const prefix = taskConsumerPrefix(job, stage!, partition!);
    let best: { info: ConsumerInfo; generation: number; version: number } | undefined;
    for (const info of streams.get(stream)!) {
      const run = runOf(info.name, prefix);
      if (!run) continue;
      if (!best || run.generation > best.generation || (run.generation === best.generation && run.version > best.version)) best = { info, ...run };
    }
    out.set(task, best ? { consumer: best.info.name, lag: best.info.num_pending } : NO_CONSUMER);
  }
  return out;
}

/** Generation and version of a consumer named `<prefix><generation>-v<version>`. */
function runOf(name: string, prefix: string): { generation: number; version: number } | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const match = /^(\d+)-v(\d+)$/.exec(name.slice(prefix.length));
  return match ? { generation: Number(match[1]), version: Number(match[2]) } : undefined;
}

async function consumersOf(jsm: JetStreamManager, stream: string): Promise<ConsumerInfo[]> {
  const out: ConsumerInfo[] = [];
  try {
    for await (const info of jsm.consumers.list(stream)) out.push(info);
  } catch (err) {
    if (isStreamNotFound(err)) return [];
    throw translateNatsError(err, `cannot list the consumers of stream "${stream}"`);
  }
  return out;
}
