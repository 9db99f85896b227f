/**
 * Runs one job on this node: makes sure its streams exist, then runs one
 * task per (stage, partition) and restarts a failed task from its last
 * committed state, with backoff. (With one node, this node owns every
 * partition; the cluster issue adds assignment.)
 */
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeConfig } from '../config/index.js';
import { ErrorCodes, millraceError } from '../errors.js';
import type { JobDefinition } from '../runtime/api/index.js';
import { compileJob, type JobPlan, type StagePlan } from '../runtime/plan/compile.js';
import type { StateBackend } from '../runtime/state/backend.js';
import type { DeadLetterHandler } from '../runtime/task/ports.js';
import { Task } from '../runtime/task/task.js';
import { natsTaskOutput } from './task-output.js';
import { openPartitionConsumer } from './transport/partition-consumer.js';
import { createStream, describeStream, partitionSubject } from './transport/streams.js';
import { translateNatsError, isStreamNotFound } from './transport/nats-errors.js';

export interface JobRunnerDeps {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly backend: StateBackend;
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly deadLetter?: DeadLetterHandler;
}

/** A task slot: the live task of one (stage, partition), replaced on restart. */
interface Slot {
  readonly stage: StagePlan;
  readonly partition: number;
  readonly inputStream: string;
  readonly filterSubject: string | undefined;
  readonly outputPartitions: number;
  task: Task | undefined;
  restarts: number;
}

const MAX_BACKOFF_MS = 30_000;

export class JobRunner {
  readonly plan: JobPlan;
  private readonly slots: Slot[] = [];
  private stopping = false;
  private readonly supervisors: Promise<void>[] = [];
  private readonly log: Logger;

  constructor(
    readonly definition: JobDefinition,
    private readonly deps: JobRunnerDeps,
  ) {
    this.plan = compileJob(definition);
    this.log = deps.logger.child({ job: definition.name });
  }

  get tasks(): readonly Task[] {
    return this.slots.flatMap((s) => (s.task ? [s.task] : []));
  }

  /** Ensures streams, starts every task; resolves once all run. */
  async start(): Promise<void> {
    const outputPartitions: number[] = [];
    for (const stage of this.plan.stages) outputPartitions.push(await this.ensureOutput(stage));
    for (const stage of this.plan.stages) {
      const inputs = await this.inputPartitions(stage);
      for (const [partition, filterSubject] of inputs.entries()) {
        this.slots.push({
          stage,
          partition,
          inputStream: stage.input.kind === 'stream' ? stage.input.stream : stage.input.source.stream,
          filterSubject,
          outputPartitions: outputPartitions[stage.index]!,
          task: undefined,
          restarts: 0,
        });
      }
    }
    await Promise.all(this.slots.map((slot) => this.startTask(slot)));
    for (const slot of this.slots) this.supervisors.push(this.supervise(slot));
    this.log.info({ stages: this.plan.stages.length, tasks: this.slots.length }, 'job started');
  }

  /** Stops every task gracefully: each commits and acks what it processed. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((s) => s.task?.stop()));
    await Promise.allSettled(this.supervisors);
  }

  private async startTask(slot: Slot): Promise<void> {
    const { stage, partition } = slot;
    const { js, jsm, nc, config } = this.deps;
    const output = natsTaskOutput(nc, config.task.publishWindow);
    const durable = `mr-${this.plan.job}-${stage.id}-${partition}`;
    const task = new Task({
      job: this.plan.job,
      stage,
      partition,
      inputStream: slot.inputStream,
      outputPartitions: slot.outputPartitions,
      backend: this.deps.backend,
      output,
      logger: this.deps.logger,
      deadLetter: this.deps.deadLetter,
      commitEveryRecords: config.task.commitEveryRecords,
      commitIntervalMs: config.task.commitIntervalMs,
      stateCacheEntries: config.task.stateCacheEntries,
      openInput: (startSeq) =>
        openPartitionConsumer(js, jsm, {
          stream: slot.inputStream,
          durable,
          filterSubject: slot.filterSubject,
          startSeq,
          maxAckPending: config.task.maxInFlight,
        }),
    });
    slot.task = task;
    try {
      await task.start();
    } catch (err) {
      output.close();
      throw err;
    }
    task.done.finally(() => output.close()).catch(() => undefined);
  }

  /** Restarts a failed task from its committed state until the job stops. */
  private async supervise(slot: Slot): Promise<void> {
    let running = true; // false after a restart that failed before the task ran
    while (!this.stopping) {
      if (running) {
        try {
          await slot.task?.done;
          return; // stopped on purpose
        } catch (err) {
          if (this.stopping) return;
          this.log.error({ err, task: slot.task?.id, restarts: slot.restarts }, 'task failed; restarting from its last commit');
        }
      }
      const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(slot.restarts, 6));
      slot.restarts++;
      await sleep(backoff);
      if (this.stopping) return;
      try {
        await this.startTask(slot);
        running = true;
      } catch (err) {
        this.log.error({ err, task: slot.task?.id, restarts: slot.restarts, backoffMs: backoff }, 'task restart failed');
        running = false;
      }
    }
  }

  /** Partition count of a stage's output stream, creating millrace streams as needed. */
  private async ensureOutput(stage: StagePlan): Promise<number> {
    if (stage.output.kind === 'jetstream') return 0;
    const { stream, partitions } = stage.output;
    const existing = await describeStream(this.deps.jsm, stream);
    if (existing) return existing.partitions;
    return (await createStream(this.deps.jsm, stream, { partitions: partitions ?? this.deps.config.defaultPartitions })).partitions;
  }

  /** One entry per input partition: the subject filter of each. */
  private async inputPartitions(stage: StagePlan): Promise<(string | undefined)[]> {
    const input = stage.input;
    if (input.kind === 'stream') {
      const described =
        (await describeStream(this.deps.jsm, input.stream)) ??
        (await createStream(this.deps.jsm, input.stream, { partitions: input.partitions ?? this.deps.config.defaultPartitions }));
      return Array.from({ length: described.partitions }, (_, p) => partitionSubject(input.stream, p));
    }
    const { stream, subjects } = input.source;
    try {
      await this.deps.jsm.streams.info(stream);
    } catch (err) {
      if (isStreamNotFound(err)) {
        throw millraceError(ErrorCodes.STREAM_NOT_FOUND, `job "${this.plan.job}" reads JetStream stream "${stream}", which does not exist`, {
          details: { stream },
        });
      }
      throw translateNatsError(err, `cannot read stream "${stream}"`);
    }
    return subjects.length > 0 ? [...subjects] : [undefined];
  }
}
