/**
 * Runs one job on this node: makes sure its streams exist, then, in each
 * run (generation) the coordinator commands, runs the tasks (one per stage
 * and partition) the run assigns to this node, restored from the run's
 * checkpoint. It says hello to the coordinator every `cluster.heartbeatMs`
 * (cluster/checkpoint/cluster-coordinator.ts) and goodbye when it stops.
 *
 * A failed task is not restarted alone: its node reports it and the
 * coordinator restarts the whole job from the last committed checkpoint in
 * a new generation (decision 003).
 */
import { randomUUID } from 'node:crypto';
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/index.js';
import { ErrorCodes, isMillraceError, millraceError } from '../errors.js';
import type { JobDefinition } from '../runtime/api/index.js';
import { compileJob, internalOutputStream, type JobPlan, type StagePlan } from '../runtime/plan/compile.js';
import type { StateBackend } from '../runtime/state/backend.js';
import type { DeadLetterHandler } from '../runtime/task/ports.js';
import { Task } from '../runtime/task/task.js';
import { ControlChannel, type RunCommand } from './checkpoint/control.js';
import type { CheckpointManifest, ManifestStore } from './checkpoint/manifest-store.js';
import type { SnapshotStore } from './checkpoint/snapshot-store.js';
import { RESTORE_SOURCES, restoreTaskState, TaskSnapshots, type RestoreSource } from './checkpoint/task-snapshots.js';
import { natsTaskOutput } from './task-output.js';
import { StoredIdLookup } from './transport/stored-ids.js';
import { openPartitionConsumer } from './transport/partition-consumer.js';
import { createStream, describeStream, partitionSubject } from './transport/streams.js';
import { translateNatsError, isStreamNotFound } from './transport/nats-errors.js';

export interface JobRunnerDeps {
  /** The data path: consumers, publishers. */
  readonly nc: NatsConnection;
  /** The control channel's connection, apart from the data so its messages never queue behind records. */
  readonly control: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly backend: StateBackend;
  readonly manifests: ManifestStore;
  readonly snapshots: SnapshotStore;
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly deadLetter?: DeadLetterHandler;
}

/** A task slot: the live task of one (stage, partition), replaced at each run. */
interface Slot {
  readonly id: string;
  readonly stage: StagePlan;
  readonly partition: number;
  readonly inputStream: string;
  /** The subject the task reads: its position's name in the manifest. */
  readonly inputSubject: string;
  readonly filterSubject: string | undefined;
  readonly outputPartitions: number;
  /** Tasks whose barriers arrive on this slot's input. */
  readonly upstream: readonly string[];
  task: Task | undefined;
}

export class JobRunner {
  readonly plan: JobPlan;
  private readonly slots: Slot[] = [];
  private stopping = false;
  private generation = 0;
  /** The newest generation commanded: an older run still queued is skipped. */
  private newestRun = 0;
  private leaderEpoch = 0;
  private channel: ControlChannel | undefined;
  private runs: Promise<void> = Promise.resolve();
  private firstRun: (() => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private hello: (() => void) | undefined;
  /** Tells the coordinator this start apart from an earlier one of the same node. */
  private readonly instance = randomUUID();
  private readonly log: Logger;
  /** For sink tasks restored with staged outputs: which of them an earlier run stored. */
  private readonly storedIds: StoredIdLookup;

  constructor(
    readonly definition: JobDefinition,
    private readonly deps: JobRunnerDeps,
  ) {
    this.plan = compileJob(definition);
    this.log = deps.logger.child({ job: definition.name });
    this.storedIds = new StoredIdLookup(deps.js, deps.jsm);
  }

  get tasks(): readonly Task[] {
    return this.slots.flatMap((s) => (s.task ? [s.task] : []));
  }

  /** Ensures streams, joins the job's runs; resolves once its tasks run. */
  async start(): Promise<void> {
    await this.buildSlots();
    const { control, config } = this.deps;
    const job = this.plan.job;
    const onError = (err: unknown) => this.log.warn({ err }, 'bad control message');
    const channel = (this.channel = new ControlChannel(control, job));
    channel.on(
      'run',
      (m) => {
        if (!this.fenced(m.leaderEpoch)) return;
        this.newestRun = Math.max(this.newestRun, m.generation);
        this.serial(() => this.applyRun(m));
      },
      onError,
    );
    const forThisRun = (m: { leaderEpoch: number; generation: number }) => this.fenced(m.leaderEpoch) && m.generation === this.generation;
    channel.on('trigger', (m) => forThisRun(m) && this.slots.forEach((s) => s.task?.triggerCheckpoint(m.checkpoint)), onError);
    channel.on('committed', (m) => forThisRun(m) && this.slots.forEach((s) => s.task?.checkpointCommitted(m.checkpoint)), onError);
    const started = new Promise<void>((resolve) => (this.firstRun = resolve));
    const internalInputs = this.slots
      .filter((s) => s.upstream.length > 0)
      .map((s) => ({ task: s.id, stream: s.inputStream, subject: s.inputSubject }));
    this.hello = () =>
      channel.send('hello', {
        node: config.nodeId,
        instance: this.instance,
        generation: this.generation,
        tasks: this.slots.map((s) => s.id),
        internalInputs,
        intervalMs: config.checkpoint.intervalMs,
        timeoutMs: config.checkpoint.timeoutMs,
        heartbeatMs: config.cluster.heartbeatMs,
        memberTimeoutMs: config.cluster.memberTimeoutMs,
      });
    this.hello();
    this.heartbeat = setInterval(this.hello, config.cluster.heartbeatMs);
    await started;
    this.log.info({ stages: this.plan.stages.length, tasks: this.tasks.length, of: this.slots.length, generation: this.generation }, 'job started');
  }

  /** Says hello now, not at the next heartbeat: a new coordinator waits for every node's. */
  sayHello(): void {
    if (!this.stopping) this.hello?.();
  }

  /** Stops every task and says goodbye; what they processed since the last checkpoint is replayed by the next run. */
  async stop(): Promise<void> {
    if (this.stopping) return this.runs;
    this.stopping = true;
    clearInterval(this.heartbeat);
    this.channel?.send('leave', { node: this.deps.config.nodeId });
    this.channel?.close();
    this.firstRun?.();
    await this.runs;
    await Promise.all(this.slots.map((s) => s.task?.stop()));
  }

  /** Whether a command from `epoch` may be obeyed: not older than the newest leader seen. */
  private fenced(epoch: number): boolean {
    if (epoch < this.leaderEpoch) {
      this.log.warn({ epoch, newest: this.leaderEpoch }, 'refused a command from an older leader');
      return false;
    }
    this.leaderEpoch = epoch;
    return true;
  }

  private serial(step: () => Promise<void>): void {
    this.runs = this.runs.then(step).catch((err) => {
      if (isMillraceError(err, ErrorCodes.INPUT_LOST) || isMillraceError(err, ErrorCodes.SAVEPOINT_INVALID)) {
        // Restarting cannot help: stop this job here and say why.
        this.log.fatal({ err }, 'the job stops: it cannot start from its last checkpoint');
        void this.stop();
        return;
      }
      this.reportFailure('(run)', err);
    });
  }

  /** Stops what runs, restores the tasks the run assigns here to its checkpoint, starts them in its generation. */
  private async applyRun(run: RunCommand): Promise<void> {
    if (this.stopping || run.generation <= this.generation || run.generation < this.newestRun) return;
    this.generation = run.generation;
    await Promise.all(this.slots.map((s) => s.task?.stop()));
    for (const slot of this.slots) slot.task = undefined;
    const mine = this.slots.filter((s) => run.assignment[s.id] === this.deps.config.nodeId);
    const manifest = await this.manifest(run.checkpoint);
    if (manifest) this.checkFits(manifest);
    if (this.generation !== run.generation || this.stopping) return; // superseded meanwhile
    const sources = Object.fromEntries(RESTORE_SOURCES.map((source) => [source, 0])) as Record<RestoreSource, number>;
    for (const source of await Promise.all(mine.map((slot) => this.startTask(slot, run.generation, manifest)))) sources[source]++;
    this.log.info({ generation: run.generation, leaderEpoch: run.leaderEpoch, checkpoint: run.checkpoint, tasks: mine.length, restoredFrom: sources }, 'run started');
    this.channel?.send('ready', { generation: run.generation, tasks: mine.map((s) => s.id) });
    this.firstRun?.();
    this.firstRun = undefined;
  }

  /**
   * A checkpoint fits the job when it has state for every task: the job's
   * stages and partition counts are those it was taken with (docs/savepoints.md).
   * State of tasks the job no longer has is left behind, with a warning.
   */
  private checkFits(manifest: CheckpointManifest): void {
    const tasks = new Set(this.slots.map((s) => s.id));
    const missing = [...tasks].filter((t) => !(t in manifest.tasks));
    const dropped = Object.keys(manifest.tasks).filter((t) => !tasks.has(t));
    if (missing.length > 0) {
      const from = manifest.restoredFrom ? `savepoint "${manifest.restoredFrom.savepoint}"` : `checkpoint ${manifest.checkpoint}`;
      throw millraceError(
        ErrorCodes.SAVEPOINT_INVALID,
        `${from} of job "${this.plan.job}" does not fit the job: it has no state for ${missing.length} of its tasks (${missing.slice(0, 5).join(', ')}); a stage or partition count changed`,
        { details: { job: this.plan.job, checkpoint: manifest.checkpoint, missing, dropped } },
      );
    }
    if (dropped.length > 0) this.log.warn({ checkpoint: manifest.checkpoint, dropped }, 'state of tasks the job no longer has is not restored');
  }

  private async manifest(checkpoint: number): Promise<CheckpointManifest | undefined> {
    if (checkpoint === 0) return undefined;
    const job = this.plan.job;
    const latest = await this.deps.manifests.latest(job);
    const found =
      latest?.manifest.checkpoint === checkpoint ? latest : (await this.deps.manifests.retained(job)).find((m) => m.manifest.checkpoint === checkpoint);
    if (!found) throw millraceError(ErrorCodes.STATE_CORRUPTED, `checkpoint ${checkpoint} of job "${job}" is not in the checkpoint store`);
    return found.manifest;
  }

  private async startTask(slot: Slot, generation: number, manifest: CheckpointManifest | undefined): Promise<RestoreSource> {
    const { stage, partition } = slot;
    const { js, jsm, nc, config, backend, snapshots } = this.deps;
    const part = manifest?.tasks[slot.id];
    if (manifest && !part) throw millraceError(ErrorCodes.STATE_CORRUPTED, `checkpoint ${manifest.checkpoint} has no entry for task ${slot.id}`);
    const uploads = new TaskSnapshots(snapshots, backend, this.plan.job, config.checkpoint.fullSnapshotEvery, part?.snapshots ?? []);
    const output = internalOutputStream(stage)
      ? natsTaskOutput(nc, config.task.publishWindow, { producer: slot.id, generation })
      : natsTaskOutput(nc, config.task.publishWindow, undefined, (query) => this.storedIds.storedIds(query));
    const task = new Task({
      job: this.plan.job,
      stage,
      partition,
      inputStream: slot.inputStream,
      outputPartitions: slot.outputPartitions,
      backend,
      output,
      logger: this.deps.logger,
      deadLetter: this.deps.deadLetter,
      stateCacheEntries: config.task.stateCacheEntries,
      checkpointing: {
        generation,
        upstream: slot.upstream,
        sinkMode: config.checkpoint.sinkMode,
        discardRestoredStaged: manifest?.restoredFrom !== undefined,
        maxUncommittedRecords: config.task.maxUncommittedRecords,
        sealed: async (sealed) => {
          let chain: string[];
          try {
            chain = await uploads.upload(sealed);
          } catch (err) {
            if (!isMillraceError(err) || err.disposition !== 'retryable') throw err;
            // Unacknowledged, this checkpoint times out at the coordinator and the next one is taken; the task runs on.
            this.log.warn({ err, task: sealed.task, checkpoint: sealed.checkpoint }, 'snapshot upload failed; the checkpoint is not acknowledged and the next upload is a full snapshot');
            return;
          }
          this.channel?.send('ack', {
            generation,
            checkpoint: sealed.checkpoint,
            task: sealed.task,
            positions: { [slot.inputSubject]: sealed.position },
            snapshots: chain,
          });
          await uploads.compactIfDue(sealed);
        },
      },
      openInput: (startSeq) =>
        openPartitionConsumer(js, jsm, {
          stream: slot.inputStream,
          durable: `mr-${this.plan.job}-${stage.id}-${partition}-g${generation}`,
          filterSubject: slot.filterSubject,
          startSeq,
          maxAckPending: config.task.maxInFlight,
        }),
    });
    const where = { job: this.plan.job, stage: stage.id, partition, prefixes: task.prefixes };
    // A savepoint restored as checkpoint n holds the state of the checkpoint it was taken at.
    const stateOf = manifest?.restoredFrom?.checkpoint ?? manifest?.checkpoint ?? 0;
    const source = await restoreTaskState(backend, snapshots, where, { id: stateOf, generation: manifest?.generation ?? 0, part });
    if (part && slot.upstream.length === 0) await this.checkInputKept(slot, part.positions[slot.inputSubject] ?? 0);
    slot.task = task;
    try {
      await task.start();
    } catch (err) {
      output.close();
      throw err;
    }
    task.done.then(
      () => output.close(),
      (err) => {
        output.close();
        if (!this.stopping && generation === this.generation) this.reportFailure(slot.id, err);
      },
    );
    return source;
  }

  /** A source's checkpointed position beyond its stream's end means the broker lost acknowledged records. */
  private async checkInputKept(slot: Slot, position: number): Promise<void> {
    const info = await this.deps.jsm.streams.info(slot.inputStream);
    if (position > info.state.last_seq) {
      throw millraceError(
        ErrorCodes.INPUT_LOST,
        `stream "${slot.inputStream}" ends at sequence ${info.state.last_seq}, but checkpoint positions say task ${slot.id} consumed up to ${position}: the broker lost records`,
        { details: { stream: slot.inputStream, subject: slot.inputSubject, position, lastSeq: info.state.last_seq } },
      );
    }
  }

  /** Tells the coordinator the run failed, and again while no new run comes. */
  private reportFailure(task: string, err: unknown): void {
    const generation = this.generation;
    if (isMillraceError(err, ErrorCodes.RUN_SUPERSEDED)) {
      // Upstream runs a newer generation already: its run command is on its way here (or is resent on the next hello).
      this.log.info({ task, generation, reason: err.message }, 'task stopped: a newer run has started');
      return;
    }
    const error = err instanceof Error ? err.message : String(err);
    this.log.error({ err, task, generation }, 'task failed; the job restarts from its last checkpoint');
    const send = () => {
      if (this.stopping || this.generation !== generation) return;
      this.channel?.send('failed', { generation, task, error });
      setTimeout(send, this.deps.config.cluster.heartbeatMs).unref();
    };
    send();
  }

  private async buildSlots(): Promise<void> {
    const outputPartitions: number[] = [];
    for (const stage of this.plan.stages) outputPartitions.push(await this.ensureOutput(stage));
    let previous: string[] = [];
    for (const stage of this.plan.stages) {
      const inputs = await this.inputPartitions(stage);
      const ids: string[] = [];
      for (const [partition, filterSubject] of inputs.entries()) {
        const id = `${this.plan.job}/${stage.id}/${partition}`;
        ids.push(id);
        const inputStream = stage.input.kind === 'stream' ? stage.input.stream : stage.input.source.stream;
        this.slots.push({
          id,
          stage,
          partition,
          inputStream,
          inputSubject: filterSubject ?? inputStream,
          filterSubject,
          outputPartitions: outputPartitions[stage.index]!,
          upstream: stage.input.kind === 'stream' && stage.input.internal ? previous : [],
          task: undefined,
        });
      }
      previous = ids;
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
