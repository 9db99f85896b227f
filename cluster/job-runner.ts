/**
 * Runs one job on this node: makes sure its streams exist, submits the job
 * to the registry, and follows the job's assignment record (decision 005):
 *
 * - a record of a new generation (a run) stops every task here and starts
 *   those it assigns to this node, restored from its checkpoint;
 * - a handoff record arms the tasks of this node that move: each stops right
 *   after sealing the handoff's checkpoint, and the node answers `armed`;
 * - the record after it starts the tasks that moved here, restored from that
 *   checkpoint; the other tasks run on untouched.
 *
 * A failed task is not restarted alone: its node reports it and the
 * coordinator restarts the whole job from the last committed checkpoint in
 * a new generation (decision 003).
 */
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { NodeConfig } from '../config/index.js';
import { ErrorCodes, isMillraceError, millraceError } from '../errors.js';
import type { JobDefinition } from '../runtime/api/index.js';
import { compileJob, internalOutputStream, type JobPlan, type StagePlan } from '../runtime/plan/compile.js';
import type { StateBackend } from '../runtime/state/backend.js';
import type { DeadLetterHandler } from '../runtime/task/ports.js';
import { Task, taskKeyPrefixes } from '../runtime/task/task.js';
import type { AssignmentStore, JobAssignment } from './assignment/assignment-store.js';
import { ControlChannel } from './checkpoint/control.js';
import { LatestOnly } from './checkpoint/latest-only.js';
import type { JobDescriptor, JobRegistry } from './jobs/job-registry.js';
import type { CheckpointManifest, ManifestStore } from './checkpoint/manifest-store.js';
import type { SnapshotStore } from './checkpoint/snapshot-store.js';
import { RESTORE_SOURCES, restoreTaskState, TaskSnapshots, type RestoreSource } from './checkpoint/task-snapshots.js';
import { natsTaskOutput } from './task-output.js';
import { StoredIdLookup } from './transport/stored-ids.js';
import { openPartitionConsumer, taskConsumerName } from './transport/partition-consumer.js';
import { createStream, describeStream, partitionSubject } from './transport/streams.js';
import { translateNatsError, isStreamNotFound } from './transport/nats-errors.js';

/** A standby node brings its copies up to date at most this often (each time: the deltas since the last time). */
const STANDBY_REFRESH_MS = 1_000;

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
  readonly assignments: AssignmentStore;
  readonly jobs: JobRegistry;
  /** The epoch of the leader lease as this node knows it (0: unknown): a record of an older leader is stale. */
  readonly leaderEpoch: () => number;
  /** This node process's instance (its membership entry's): a record made for an earlier one is not obeyed. */
  readonly instance: string;
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
  /** While the task is moving here: its state being brought to the last committed checkpoint ahead of the move. */
  prefetch: Promise<void> | undefined;
}

export class JobRunner {
  readonly plan: JobPlan;
  private readonly slots: Slot[] = [];
  private stopping = false;
  private generation = 0;
  /** How many tasks the record applied last gives this node. */
  private assignedHere = 0;
  /** Tasks this node keeps a standby copy of (JobOptions.standbyReplicas): followed to each committed checkpoint. */
  private standbyOf: readonly Slot[] = [];
  private readonly standbyRefresh = new LatestOnly<number>(
    () => this.refreshStandbys(),
    STANDBY_REFRESH_MS,
    (err) => this.log.warn({ err }, 'following the snapshots of standby tasks failed'),
  );
  /** The newest record received: an older one still queued is skipped. */
  private newest = { generation: 0, version: 0 };
  private leaderEpoch = 0;
  private channel: ControlChannel | undefined;
  private stopWatch: (() => void) | undefined;
  private records: Promise<void> = Promise.resolve();
  private firstRun: (() => void) | undefined;
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

  /** The job as the registry and the coordinator see it. */
  get descriptor(): JobDescriptor {
    const { config } = this.deps;
    return {
      job: this.plan.job,
      tasks: this.slots.map((s) => s.id),
      internalInputs: this.slots.filter((s) => s.upstream.length > 0).map((s) => ({ task: s.id, stream: s.inputStream, subject: s.inputSubject })),
      stages: this.plan.stages.map((stage) => ({
        id: stage.id,
        input: stage.input.kind === 'stream' ? stage.input.stream : stage.input.source.stream,
        output: stage.output.kind === 'stream' ? stage.output.stream : typeof stage.output.sink.subject === 'string' ? stage.output.sink.subject : '(subject per record)',
        tasks: this.slots.filter((s) => s.stage === stage).length,
      })),
      intervalMs: config.checkpoint.intervalMs,
      timeoutMs: config.checkpoint.timeoutMs,
      standbyReplicas: this.definition.options?.standbyReplicas ?? 0,
      status: 'running',
      updatedBy: config.nodeId,
      updatedAt: Date.now(),
    };
  }

  /**
   * Whether this node still has a part in the job: a task of it runs (or is
   * stopping) here, or the assignment in force still gives it tasks (a task
   * handed over is only gone once the record after its checkpoint's commit
   * has it elsewhere; a node leaving before that would make the job restart).
   */
  get busy(): boolean {
    return this.assignedHere > 0 || this.slots.some((s) => s.task && s.task.state !== 'stopped' && s.task.state !== 'failed');
  }

  /**
   * Ensures streams, submits the job, follows its assignment; resolves once
   * the coordinator counts this node among the job's nodes and the tasks it
   * gives this node run.
   */
  async start(): Promise<void> {
    await this.buildSlots();
    const { control } = this.deps;
    const job = this.plan.job;
    const onError = (err: unknown) => this.log.warn({ err }, 'bad control message');
    const channel = (this.channel = new ControlChannel(control, job));
    const forThisRun = (m: { leaderEpoch: number; generation: number }) => this.fenced(m.leaderEpoch) && m.generation === this.generation;
    channel.on('trigger', (m) => forThisRun(m) && this.slots.forEach((s) => s.task?.triggerCheckpoint(m.checkpoint)), onError);
    channel.on(
      'committed',
      (m) => {
        if (!forThisRun(m)) return;
        for (const slot of this.slots) slot.task?.checkpointCommitted(m.checkpoint);
        if (this.standbyOf.length > 0) this.standbyRefresh.offer(m.checkpoint);
      },
      onError,
    );
    const started = new Promise<void>((resolve) => (this.firstRun = resolve));
    await this.deps.jobs.submit(this.descriptor);
    this.stopWatch = await this.deps.assignments.watch(job, (record) => this.onRecord(record), this.log);
    await started;
    this.log.info({ stages: this.plan.stages.length, tasks: this.tasks.length, of: this.slots.length, generation: this.generation }, 'job started');
  }

  /** Stops every task; what they processed since the last checkpoint is replayed by the next run. */
  async stop(): Promise<void> {
    if (this.stopping) return this.records;
    this.stopping = true;
    this.standbyRefresh.cancel();
    this.stopWatch?.();
    this.channel?.close();
    this.firstRun?.();
    await this.records;
    await Promise.all(this.slots.map((s) => s.task?.stop()));
  }

  private onRecord(record: JobAssignment): void {
    // A record left by an earlier leader (found at start) waits for the current leader's.
    if (record.leaderEpoch < this.deps.leaderEpoch()) return void this.log.debug({ record: record.version, epoch: record.leaderEpoch }, 'assignment of an older leader ignored');
    if (!this.fenced(record.leaderEpoch)) return;
    const mine = record.instances?.[this.deps.config.nodeId];
    // Tasks given to this node id before it restarted: they are lost, and the coordinator's next run says where they go.
    if (mine !== undefined && mine !== this.deps.instance) return void this.log.debug({ version: record.version }, 'assignment made for an earlier start of this node ignored');
    const { generation, version } = record;
    if (generation < this.newest.generation || (generation === this.newest.generation && version <= this.newest.version)) return;
    this.newest = { generation, version };
    this.serial(() => this.apply(record));
  }

  /** Whether `record` is still the newest: a queued record that a newer one overtook is skipped. */
  private superseded(record: JobAssignment): boolean {
    return this.stopping || record.generation !== this.newest.generation || record.version !== this.newest.version;
  }

  private async apply(record: JobAssignment): Promise<void> {
    if (record.generation < this.generation) return;
    if (record.generation > this.generation) {
      if (this.superseded(record) && record.generation < this.newest.generation) return; // a newer run is queued
      await this.applyRun(record);
    } else if (record.handoff) {
      this.arm(record, record.handoff);
    } else {
      await this.applyMoves(record);
    }
    // Started once the coordinator counts this node in, and no task is on its way here.
    const me = this.deps.config.nodeId;
    this.assignedHere = Object.values(record.tasks).filter((node) => node === me).length;
    this.standbyOf = this.slots.filter((s) => record.tasks[s.id] !== me && record.standbys?.[s.id]?.includes(me));
    if (this.standbyOf.length > 0) this.standbyRefresh.offer(record.checkpoint);
    if (record.nodes.includes(me) && !Object.values(record.handoff?.to ?? {}).includes(me)) this.started();
  }

  private started(): void {
    this.firstRun?.();
    this.firstRun = undefined;
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
    this.records = this.records.then(step).catch((err) => {
      if (isMillraceError(err, ErrorCodes.INPUT_LOST) || isMillraceError(err, ErrorCodes.SAVEPOINT_INVALID)) {
        // Restarting cannot help: stop this job here and say why.
        this.log.fatal({ err }, 'the job stops: it cannot start from its last checkpoint');
        void this.stop();
        return;
      }
      this.reportFailure('(run)', err);
    });
  }

  /** A run: stops what runs, restores the tasks the record assigns here to its checkpoint, starts them in its generation. */
  private async applyRun(run: JobAssignment): Promise<void> {
    this.generation = run.generation;
    await Promise.all(this.slots.map((s) => s.task?.stop()));
    for (const slot of this.slots) slot.task = undefined;
    const mine = this.slots.filter((s) => run.tasks[s.id] === this.deps.config.nodeId);
    const manifest = await this.manifest(run.checkpoint);
    if (manifest) this.checkFits(manifest);
    if (this.superseded(run)) return;
    const sources = await this.startTasks(mine, run, manifest);
    const ids = mine.map((slot) => slot.id);
    this.log.info({ generation: run.generation, version: run.version, leaderEpoch: run.leaderEpoch, checkpoint: run.checkpoint, tasks: mine.length, ids, restoredFrom: sources }, 'run started');
    this.channel?.send('ready', { generation: run.generation, version: run.version, tasks: mine.map((s) => s.id) });
  }

  /**
   * A handoff record: the tasks of this node that move stop right after
   * sealing the handoff's checkpoint; the state of those moving here is
   * restored meanwhile to the last committed checkpoint, so that after the
   * handoff's commit only its delta is left to apply.
   */
  private arm(record: JobAssignment, handoff: NonNullable<JobAssignment['handoff']>): void {
    const me = this.deps.config.nodeId;
    for (const slot of this.slots) if (handoff.to[slot.id] === me && !slot.task) slot.prefetch = this.prefetch(slot, 'moving here');
    const tasks: string[] = [];
    const refused: string[] = [];
    for (const slot of this.slots) {
      if (handoff.to[slot.id] === undefined || record.tasks[slot.id] !== me) continue;
      (slot.task?.stopAfter(handoff.checkpoint) ? tasks : refused).push(slot.id);
    }
    if (tasks.length + refused.length === 0) return;
    this.log.info({ version: record.version, checkpoint: handoff.checkpoint, tasks, refused }, 'tasks stop at the handoff checkpoint');
    this.channel?.send('armed', { generation: record.generation, version: record.version, node: me, tasks, refused });
  }

  /**
   * The record after a handoff: tasks that moved away have stopped at its
   * checkpoint (they are let go), tasks that moved here start from it.
   */
  private async applyMoves(record: JobAssignment): Promise<void> {
    const me = this.deps.config.nodeId;
    for (const slot of this.slots) {
      const task = slot.task;
      if (!task || record.tasks[slot.id] === me) continue;
      if (task.state === 'running') {
        // Never armed (or not stopped at the checkpoint): its state went on past the one the new owner restores.
        this.log.error({ task: slot.id, version: record.version }, 'a task moved away without stopping at the handoff checkpoint');
        await task.stop();
        this.reportFailure(slot.id, new Error(`task ${slot.id} was not handed over at checkpoint ${record.checkpoint}`));
      }
      await task.done.catch(() => undefined);
      slot.task = undefined;
    }
    const arriving = this.slots.filter((s) => record.tasks[s.id] === me && !s.task);
    if (arriving.length === 0) return;
    const manifest = await this.manifest(record.checkpoint);
    if (this.superseded(record)) return;
    const sources = await this.startTasks(arriving, record, manifest);
    this.log.info({ generation: record.generation, version: record.version, checkpoint: record.checkpoint, ids: arriving.map((s) => s.id), restoredFrom: sources }, 'moved tasks started');
    this.channel?.send('ready', { generation: record.generation, version: record.version, tasks: arriving.map((s) => s.id) });
    for (const slot of arriving) this.reportFirstRecord(slot);
  }

  /** Logs when a task that moved here processes its first record: the end of its pause. */
  private reportFirstRecord(slot: Slot): void {
    const task = slot.task;
    if (!task) return;
    const poll = setInterval(() => {
      if (slot.task !== task || task.state !== 'running') return clearInterval(poll);
      if (task.firstRecordAt === 0) return;
      clearInterval(poll);
      this.log.info({ task: slot.id, firstRecordAt: task.firstRecordAt }, 'moved task processes records');
    }, 10);
    poll.unref();
  }

  /** Brings the state of the tasks this node is a standby for to the last committed checkpoint, one task at a time. */
  private async refreshStandbys(): Promise<void> {
    for (const slot of this.standbyOf) {
      if (this.stopping || slot.task || slot.prefetch) continue; // running here, or being brought up to date already
      slot.prefetch = this.prefetch(slot, 'standby');
      await slot.prefetch;
      slot.prefetch = undefined;
    }
  }

  /**
   * Restores `slot`'s state (of a task not running here) to the job's last
   * committed checkpoint, downloading only the deltas after the one it holds;
   * failures only cost a fuller restore later.
   */
  private prefetch(slot: Slot, why: 'moving here' | 'standby'): Promise<void> {
    const { backend, snapshots, manifests } = this.deps;
    const job = this.plan.job;
    return (async () => {
      const latest = (await manifests.latest(job))?.manifest;
      const part = latest?.tasks[slot.id];
      if (!latest || !part) return;
      const where = { job, stage: slot.stage.id, partition: slot.partition, prefixes: taskKeyPrefixes(job, slot.stage, slot.partition) };
      const started = Date.now();
      const stateOf = latest.restoredFrom?.checkpoint ?? latest.checkpoint;
      const source = await restoreTaskState(backend, snapshots, where, { id: stateOf, generation: latest.generation, part });
      this.log.debug({ task: slot.id, why, checkpoint: latest.checkpoint, source, ms: Date.now() - started }, 'state of a task not running here brought to a committed checkpoint');
    })().catch((err: unknown) => this.log.warn({ err, task: slot.id, why }, 'bringing the state of a task not running here up to date failed; it restores in full when it runs here'));
  }

  private async startTasks(slots: readonly Slot[], record: JobAssignment, manifest: CheckpointManifest | undefined): Promise<Record<RestoreSource, number>> {
    const sources = Object.fromEntries(RESTORE_SOURCES.map((source) => [source, 0])) as Record<RestoreSource, number>;
    for (const source of await Promise.all(slots.map((slot) => this.startTask(slot, record, manifest)))) sources[source]++;
    return sources;
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

  private async startTask(slot: Slot, record: JobAssignment, manifest: CheckpointManifest | undefined): Promise<RestoreSource> {
    const { generation, version } = record;
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
            // Where a task resumed from this checkpoint reads again: what the stream must keep.
            positions: { [slot.inputSubject]: sealed.resumeAfter },
            snapshots: chain,
          });
          if (task.handedOverAt === 0) await uploads.compactIfDue(sealed); // a task handed over uploads nothing more
        },
      },
      openInput: (startSeq) =>
        openPartitionConsumer(js, jsm, {
          stream: slot.inputStream,
          durable: taskConsumerName(this.plan.job, stage.id, partition, generation, version),
          filterSubject: slot.filterSubject,
          startSeq,
          maxAckPending: config.task.maxInFlight,
        }),
    });
    const where = { job: this.plan.job, stage: stage.id, partition, prefixes: task.prefixes };
    if (slot.prefetch) await slot.prefetch;
    slot.prefetch = undefined;
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
    // What ownership of the task this was (tests check that no two nodes process a task in the same generation at once).
    const ended = () =>
      this.log.info(
        { task: slot.id, generation, version, state: task.state, processed: task.processed, firstRecordAt: task.firstRecordAt, lastRecordAt: task.lastRecordAt, handedOverAt: task.handedOverAt },
        'task ended',
      );
    task.done.then(
      () => {
        output.close();
        ended();
      },
      (err) => {
        output.close();
        ended();
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
          prefetch: undefined,
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
    const { defaultPartitions, nats } = this.deps.config;
    return (await createStream(this.deps.jsm, stream, { partitions: partitions ?? defaultPartitions, replicas: nats.replicas })).partitions;
  }

  /** One entry per input partition: the subject filter of each. */
  private async inputPartitions(stage: StagePlan): Promise<(string | undefined)[]> {
    const input = stage.input;
    if (input.kind === 'stream') {
      const described =
        (await describeStream(this.deps.jsm, input.stream)) ??
        (await createStream(this.deps.jsm, input.stream, { partitions: input.partitions ?? this.deps.config.defaultPartitions, replicas: this.deps.config.nats.replicas }));
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
