/**
 * Runs a millrace job in this process against the bench's input stream and
 * times it from job start until the whole input is in a committed
 * checkpoint and every output is stored.
 *
 * A bounded input ends where a stream never does: after the last record the
 * run asks for one final checkpoint at once (`node.checkpoint()`) instead of
 * idling until the next periodic one, which would add up to a whole interval
 * of waiting to a run of a few seconds. Every configuration pays for that
 * final checkpoint; they differ in what happens before it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type JetStreamClient, type JetStreamManager } from 'nats';
import pino, { type Logger } from 'pino';
import { startNode, type JobDefinition, type MillraceNode, type NodeConfigInput } from '../../index.js';
import { ManifestStore } from '../../cluster/checkpoint/manifest-store.js';
import type { BenchContext } from '../scenario.js';
import { partitionSubjects } from '../streams.js';
import { verifyStreamCount } from '../verify.js';

export type CheckpointSettings = NonNullable<NodeConfigInput['checkpoint']>;

/** The node's defaults, spelled out so a change of default does not silently change the scenarios. */
export const CHECKPOINT_EVERY_SECOND: CheckpointSettings = Object.freeze({ intervalMs: 1_000, sinkMode: 'transactional' });

/**
 * The closest a node comes to running without checkpoints (it always runs a
 * coordinator): the first periodic checkpoint would come after an hour, far
 * past any run (the runner kills a run after 120 s), so only the final
 * checkpoint happens; sink outputs go out at once ('immediate'), since
 * transactional ones would wait for that checkpoint. Nothing is committed
 * before the end: no snapshot uploads, no barriers, no staged outputs.
 */
export const FINAL_CHECKPOINT_ONLY: CheckpointSettings = Object.freeze({ intervalMs: 3_600_000, sinkMode: 'immediate' });

export type TaskSettings = NonNullable<NodeConfigInput['task']>;

/**
 * Task settings for a run without periodic checkpoints: a source may run
 * through the whole input without a commit (by default it waits for one
 * after 100 000 records, which would stall such a run).
 */
export function uncappedSources(events: number): TaskSettings {
  return { maxUncommittedRecords: events };
}

const POLL_MS = 10;
/** Output stream polls: rarer, each is a JetStream API request. */
const OUTPUT_POLL_MS = 20;

export interface MillraceRun {
  seconds: number;
  /** Checkpoints the job took (ids start at 1 in a fresh job): the last is the final one. */
  checkpoints: number;
  /** Checks shared by every millrace scenario. */
  verified: string[];
}

export async function runMillraceJob(ctx: BenchContext, definition: JobDefinition, checkpoint: CheckpointSettings, task?: TaskSettings): Promise<MillraceRun> {
  // Info lines are few (runs, lease changes); a failed run quotes them. BENCH_LOG_LEVEL=debug adds every checkpoint.
  const logFile = join(ctx.workDir, 'node.log');
  const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'info', base: { node: ctx.runId } }, pino.destination({ dest: logFile, sync: true }));
  try {
    return await timedRun(ctx, definition, checkpoint, task, logger);
  } catch (err) {
    const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-12).join('\n');
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- node log (tail) ---\n${tail}`, { cause: err });
  }
}

async function timedRun(
  ctx: BenchContext,
  definition: JobDefinition,
  checkpoint: CheckpointSettings,
  task: TaskSettings | undefined,
  logger: Logger,
): Promise<MillraceRun> {
  const node = await startNode({ nats: { servers: [ctx.natsUrl] }, dataDir: ctx.workDir, nodeId: ctx.runId, checkpoint, ...(task && { task }) }, { logger });
  const nc = await connect({ servers: ctx.natsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    let seconds: number;
    let final: number;
    try {
      ctx.timer.start();
      await node.runJob(definition);
      await allProcessed(node, ctx.events);
      final = await node.checkpoint(definition.name);
      await outputsStored(jsm, ctx.outputStream, ctx.events);
      seconds = ctx.timer.stop();
    } finally {
      await node.stop();
    }
    const verified = [
      await verifyStreamCount(jsm, ctx.outputStream, ctx.events),
      await verifyCommittedToEnd(nc.jetstream(), jsm, ctx, definition.name, final),
    ];
    return { seconds, checkpoints: final, verified };
  } finally {
    await nc.close();
  }
}

/**
 * Every task together processed `events` records. A failed task, or a new
 * run of the job (it restarts from its last checkpoint with new tasks, whose
 * counts start again), fails the run: the figure would not be a straight run.
 */
async function allProcessed(node: MillraceNode, events: number): Promise<void> {
  const first = new Set(node.tasks());
  for (;;) {
    const tasks = node.tasks();
    const failed = tasks.find((t) => t.state === 'failed');
    if (failed) throw new Error(`task ${failed.id} failed`);
    if (tasks.some((t) => !first.has(t))) throw new Error('the job restarted from its last checkpoint during the run (a task failed or the node lost its leader lease)');
    if (tasks.reduce((n, t) => n + t.processed, 0) >= events) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Transactional outputs are published after the commit: wait until all are stored. */
async function outputsStored(jsm: JetStreamManager, stream: string, events: number): Promise<void> {
  while ((await jsm.streams.info(stream)).state.messages < events) await new Promise((r) => setTimeout(r, OUTPUT_POLL_MS));
}

/**
 * The job's last committed manifest is checkpoint `final` or a later one, and its positions
 * reach the last sequence of every input partition: the whole input is
 * committed, not merely processed.
 */
async function verifyCommittedToEnd(
  js: JetStreamClient,
  jsm: JetStreamManager,
  ctx: BenchContext,
  job: string,
  final: number,
): Promise<string> {
  const latest = (await (await ManifestStore.open(js)).latest(job))?.manifest;
  // A periodic checkpoint may commit after the final one, before the node stops.
  if (!latest || latest.checkpoint < final) throw new Error(`job ${job}: last committed checkpoint ${latest?.checkpoint}, expected ${final} or later`);
  const positions = Object.values(latest.tasks).flatMap((t) => Object.entries(t.positions));
  for (const subject of partitionSubjects(ctx.inputStream, ctx.partitions)) {
    const last = (await jsm.streams.getMessage(ctx.inputStream, { last_by_subj: subject })).seq;
    const at = positions.find(([s]) => s === subject)?.[1];
    if (at !== last) throw new Error(`checkpoint ${final} of ${job} has ${subject} at ${at}, its last sequence is ${last}`);
  }
  return `checkpoint ${latest.checkpoint} covers all ${ctx.partitions} input partitions`;
}
