/**
 * The coordinator of one job (ARCHITECTURE, checkpoints; decisions 003 and
 * 005). It acts only while its node holds the leader lease, and stamps every
 * command with the lease's epoch.
 *
 * Runs. A run (generation) starts every task of the job from the last
 * committed checkpoint on the live nodes (Flink's full restart): when this
 * node takes the lease, when a node that owns tasks dies or restarts, or
 * when a task fails (with a backoff that grows while runs keep failing
 * before a checkpoint commits). The assignment (balanced, sticky, within
 * capacity: assign-tasks.ts) goes to the AssignmentStore, which every node
 * watches; checkpoints start once every task reports ready.
 *
 * Handoffs. When a node joins, or one leaves gracefully (its membership
 * entry says `leaving`), only the tasks that must move do, at a checkpoint,
 * while every other task goes on processing:
 *   1. arming: a record names the moving tasks and checkpoint n; their
 *      owners answer `armed` (the tasks will stop right after sealing n);
 *   2. checkpoint n is triggered as usual; the moving tasks stop at it;
 *   3. once n commits, a record gives the tasks their new owners, which
 *      restore them from n and report ready; then checkpoints go on.
 * A handoff that fails (a refusal, a timeout, n abandoned) becomes a run.
 *
 * Checkpoints. Every `intervalMs` (or on demand) it triggers checkpoint n on
 * the source tasks and collects one acknowledgement per task. When all are
 * in, it writes the manifest with compare-and-set: that write is the commit.
 * Then it tells the nodes (transactional sinks publish); every few seconds it
 * trims internal streams below what the newest checkpoint consumed and
 * collects unneeded snapshots. A checkpoint not complete within `timeoutMs`
 * is abandoned; the next one covers its epoch too. A commit refused as stale
 * (MR_CHECKPOINT_CONFLICT) means another node leads: this one steps down.
 */
import type { JetStreamManager } from 'nats';
import type { Logger } from 'pino';
import { ErrorCodes, isMillraceError, millraceError } from '../../errors.js';
import { assignStandbys, assignTasks, movedTasks, type Assignment } from '../assignment/assign-tasks.js';
import type { AssignmentStore, JobAssignment } from '../assignment/assignment-store.js';
import type { JobDescriptor } from '../jobs/job-registry.js';
import { LatestOnly } from './latest-only.js';
import type { ArmedNotice, ControlChannel, TaskAck } from './control.js';
import type { CheckpointManifest, ManifestStore, StoredManifest, TaskCheckpoint } from './manifest-store.js';
import type { RunStore } from './run-store.js';
import type { SavepointStore } from './savepoints.js';
import type { KeptSnapshots, SnapshotStore } from './snapshot-store.js';

/** A live node that can run the job, as the coordinator needs it. */
export interface JobMember {
  readonly instance: string;
  readonly leaving: boolean;
}

export interface CoordinatorOptions {
  readonly channel: ControlChannel;
  readonly manifests: ManifestStore;
  readonly runs: RunStore;
  readonly snapshots: SnapshotStore;
  readonly savepoints: SavepointStore;
  readonly assignments: AssignmentStore;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  /** The job: its tasks, internal inputs (trimmed after each commit) and checkpoint timing. */
  readonly descriptor: JobDescriptor;
  /** The most tasks of this job `node` may take now (its capacity less other jobs' tasks there); undefined: no limit. */
  readonly capacity: (node: string) => number | undefined;
  /** A handoff not finished this long after it started becomes a run. @default 30000 */
  readonly handoffTimeoutMs?: number;
  /** Membership changes are gathered this long before the coordinator acts on them. @default 200 */
  readonly settleMs?: number;
}

const MAX_RESTART_BACKOFF_MS = 30_000;
const DEFAULT_HANDOFF_TIMEOUT_MS = 30_000;
const DEFAULT_SETTLE_MS = 200;
/**
 * Trimming internal streams and collecting snapshots is retention only: it
 * runs at most this often, whatever the checkpoint interval.
 */
const CLEANUP_INTERVAL_MS = 5_000;

interface Pending {
  readonly checkpoint: number;
  /** Date.now() at the trigger, for the committed log line. */
  readonly triggeredAt: number;
  readonly acks: Map<string, TaskAck>;
  readonly timeout: NodeJS.Timeout;
  readonly waiters: { resolve: (n: number) => void; reject: (err: unknown) => void }[];
}

/**
 * Where the job is: no run (`idle`); a run's tasks starting (`starting`);
 * `running`; or a handoff: owners arming (`arming`), checkpoint n on its way
 * (`handingOver`), the moved tasks starting on their new nodes (`resuming`).
 */
type Phase = 'idle' | 'starting' | 'running' | 'arming' | 'handingOver' | 'resuming';

interface Handoff {
  readonly checkpoint: number;
  /** The assignment once the moved tasks run on their new nodes. */
  readonly target: Map<string, string>;
  readonly moved: readonly string[];
  /** Nodes yet to answer `armed`. */
  readonly arming: Set<string>;
  readonly startedAt: number;
  readonly timeout: NodeJS.Timeout;
  triggered: boolean;
}

export class JobCoordinator {
  private epoch = 0;
  private generation = 0;
  private version = 0;
  /** The KV revision of the job's assignment record as this coordinator last read or wrote it. */
  private revision = 0;
  private phase: Phase = 'idle';
  private previous: StoredManifest | undefined;
  private nextCheckpoint = 1;
  /** Tasks the current run or handoff waits to hear ready from. */
  private readonly waitingReady = new Set<string>();
  private pending: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private waiters: Pending['waiters'] = [];
  /** Runs that failed since the last commit: the backoff before the next. */
  private failedRuns = 0;
  private restarting = false;
  /** Live nodes that can run the job. */
  private members: ReadonlyMap<string, JobMember> = new Map();
  /** The instance of each node when it was given its tasks: a node that restarted since lost them. */
  private ownerInstances = new Map<string, string>();
  private assignment: Assignment = new Map();
  /** Task → its standby nodes, as last published. */
  private standbys = new Map<string, string[]>();
  private handoff: Handoff | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private runRequested = false;
  /** Serializes runs, handoffs and commits. */
  private work: Promise<void> = Promise.resolve();
  /** The cleanup after commits: one at a time, for the newest commit, at most every CLEANUP_INTERVAL_MS. */
  private readonly cleanup = new LatestOnly<Record<string, TaskCheckpoint>>(
    (tasks) => this.afterCommit(tasks),
    CLEANUP_INTERVAL_MS,
    (err) => {
      // The node is stopping: the next coordinator's commits clean up what this one could not.
      if (!this.active || (err as { code?: string })?.code === 'CONNECTION_DRAINING') return;
      this.log.warn({ err }, 'cleaning up after a checkpoint failed');
    },
  );
  private readonly log: Logger;
  private readonly tasks: readonly string[];

  constructor(private readonly o: CoordinatorOptions) {
    this.log = o.logger.child({ job: o.channel.job, role: 'coordinator' });
    this.tasks = o.descriptor.tasks;
    const onError = (err: unknown) => this.log.warn({ err }, 'malformed control message');
    o.channel.on('failed', (m) => this.onFailed(m.generation, m.task, m.error), onError);
    o.channel.on('ready', (m) => this.onReady(m.generation, m.version, m.tasks), onError);
    o.channel.on('armed', (m) => this.onArmed(m), onError);
    o.channel.on('ack', (m) => this.onAck(m), onError);
  }

  /** Whether this coordinator leads the job now. */
  get active(): boolean {
    return this.epoch > 0;
  }

  /** The assignment in force (task → node), for capacity accounting across jobs and `cluster status`. */
  get current(): Assignment {
    return this.assignment;
  }

  /** This node took the lease with `epoch` (the members are known): start a new run of the job. */
  lead(epoch: number): void {
    if (this.epoch === epoch) return;
    this.epoch = epoch;
    this.phase = 'idle';
    this.requestRun(`leader epoch ${epoch}`);
  }

  /** The live nodes that can run the job changed: a run if an owner is gone, else a handoff if balance needs one. */
  setMembers(members: ReadonlyMap<string, JobMember>): void {
    this.members = members;
    if (!this.active) return;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.serial(() => this.reconsider()), this.o.settleMs ?? DEFAULT_SETTLE_MS);
  }

  /** This node lost (or gave up) the lease. */
  resign(): void {
    if (!this.active) return;
    this.log.info({ epoch: this.epoch }, 'no longer coordinating');
    this.epoch = 0;
    this.phase = 'idle';
    this.abandon('this node no longer leads');
    this.endHandoff();
    clearTimeout(this.timer);
    clearTimeout(this.settleTimer);
    this.cleanup.cancel();
  }

  /** The manifest of the last checkpoint this coordinator committed or started from. */
  get lastCommitted(): CheckpointManifest | undefined {
    return this.previous?.manifest;
  }

  /** Takes a checkpoint now; resolves with its id once committed. */
  checkpointNow(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.trigger();
    });
  }

  close(): void {
    this.resign();
    this.o.channel.close();
    for (const w of this.waiters.splice(0)) w.reject(new Error('coordinator closed'));
  }

  private serial(step: () => Promise<void>): void {
    this.work = this.work.then(step).catch((err) => this.onError(err));
  }

  /** Queues a new run unless one is queued already (several failures at once make one run). */
  private requestRun(why: string): void {
    if (this.runRequested) return;
    this.runRequested = true;
    this.serial(() => this.newRun(why));
  }

  /** Nodes that may take tasks: live, not leaving. */
  private eligible(): string[] {
    return [...this.members].filter(([, m]) => !m.leaving).map(([node]) => node);
  }

  private capacities(nodes: readonly string[]): Map<string, number> {
    const capacity = new Map<string, number>();
    for (const node of nodes) {
      const c = this.o.capacity(node);
      if (c !== undefined) capacity.set(node, c);
    }
    return capacity;
  }

  /** An owner of tasks is gone or restarted: they are lost since the last checkpoint. */
  private lostOwner(): string | undefined {
    for (const node of new Set(this.assignment.values())) {
      const member = this.members.get(node);
      if (!member) return `node ${node} is gone`;
      if (member.instance !== this.ownerInstances.get(node)) return `node ${node} restarted`;
    }
    return undefined;
  }

  /** Acts on the members: a run when needed, else a handoff when balance needs one. */
  private async reconsider(): Promise<void> {
    if (!this.active) return;
    if (this.phase === 'idle') return this.newRun('nodes changed');
    const lost = this.lostOwner();
    if (lost) return this.newRun(lost);
    if (this.phase !== 'running') return; // reconsidered when the run or handoff in progress is done
    const nodes = this.eligible();
    if (nodes.length === 0) return; // leaving nodes keep their tasks: there is no one to give them to
    let target: Map<string, string>;
    try {
      target = assignTasks(this.tasks, nodes, this.assignment, this.capacities(nodes));
    } catch (err) {
      this.log.error({ err }, 'no assignment fits the nodes: tasks stay where they are');
      return;
    }
    const moved = movedTasks(target, this.assignment);
    if (moved.length > 0) await this.startHandoff(target, moved);
  }

  private async newRun(why: string): Promise<void> {
    this.runRequested = false;
    if (!this.active) return;
    this.abandon('the job restarts');
    this.endHandoff();
    clearTimeout(this.timer);
    this.waitingReady.clear();
    // Between runs there is none: readies, acks and failures of the old one no longer count.
    this.generation = 0;
    this.phase = 'idle';
    const nodes = this.eligible();
    if (nodes.length === 0) {
      this.log.warn({ why }, 'no live node to run the job on; waiting for one');
      return;
    }
    let assignment: Map<string, string>;
    try {
      // A task whose node is gone goes to one of its standbys first: their state is warm.
      assignment = assignTasks(this.tasks, nodes, this.assignment, this.capacities(nodes), this.standbys);
    } catch (err) {
      this.log.error({ err, why }, 'the job waits for capacity');
      return;
    }
    const job = this.o.channel.job;
    const [latest, stored] = await Promise.all([this.o.manifests.latest(job), this.o.assignments.current(job)]);
    if (stored.record && stored.record.leaderEpoch > this.epoch) {
      throw millraceError(ErrorCodes.CHECKPOINT_CONFLICT, `a newer leader (epoch ${stored.record.leaderEpoch}) assigns job "${job}"`, {
        details: { job, epoch: this.epoch, newer: stored.record.leaderEpoch },
      });
    }
    // Claimed for this epoch: a former leader still finishing a checkpoint can no longer commit it.
    const previous = latest && latest.manifest.leaderEpoch < this.epoch ? await this.o.manifests.claim(latest, this.epoch) : latest;
    const generation = await this.o.runs.next(job, nodes.sort());
    if (!this.active) return;
    this.revision = stored.revision;
    this.previous = previous;
    this.generation = generation;
    const checkpoint = previous?.manifest.checkpoint ?? 0;
    this.nextCheckpoint = Math.max(this.nextCheckpoint, checkpoint + 1);
    const before = this.assignment;
    this.assignment = assignment;
    this.ownerInstances = new Map([...this.members].map(([node, m]) => [node, m.instance]));
    this.version = Math.max(this.version, stored.record?.version ?? 0) + 1;
    this.phase = 'starting';
    for (const t of this.tasks) this.waitingReady.add(t);
    const moved = before.size === 0 ? [] : movedTasks(assignment, before);
    this.log.info({ generation, version: this.version, checkpoint, why, nodes, moved }, 'new run of the job');
    await this.publish({ checkpoint, tasks: Object.fromEntries(assignment) });
  }

  private async publish(record: Pick<JobAssignment, 'checkpoint' | 'tasks' | 'handoff'>): Promise<void> {
    const replicas = this.o.descriptor.standbyReplicas ?? 0;
    if (replicas > 0) this.standbys = assignStandbys(new Map(Object.entries(record.tasks)), this.eligible(), replicas, this.standbys);
    this.revision = await this.o.assignments.publish({
      job: this.o.channel.job,
      nodes: this.eligible().sort(),
      instances: Object.fromEntries([...new Set(Object.values(record.tasks))].flatMap((node) => {
        const instance = this.ownerInstances.get(node);
        return instance === undefined ? [] : [[node, instance]];
      })),
      ...(replicas > 0 ? { standbys: Object.fromEntries(this.standbys) } : {}),
      leaderEpoch: this.epoch,
      generation: this.generation,
      version: this.version,
      writtenAt: Date.now(),
      ...record,
    }, this.revision);
  }

  /** Step 1 of a handoff: tell the owners of the moving tasks to stop them at the next checkpoint. */
  private async startHandoff(target: Map<string, string>, moved: readonly string[]): Promise<void> {
    const checkpoint = this.nextCheckpoint++;
    const arming = new Set(moved.map((t) => this.assignment.get(t)!));
    const timeoutMs = this.o.handoffTimeoutMs ?? DEFAULT_HANDOFF_TIMEOUT_MS;
    const timeout = setTimeout(() => this.requestRun(`the handoff at checkpoint ${checkpoint} took over ${timeoutMs} ms`), timeoutMs);
    this.handoff = { checkpoint, target, moved, arming, startedAt: Date.now(), timeout, triggered: false };
    this.phase = 'arming';
    this.version++;
    const to = Object.fromEntries(moved.map((t) => [t, target.get(t)!]));
    this.log.info({ generation: this.generation, version: this.version, checkpoint, moved: moved.length, to }, 'handoff: tasks move at a checkpoint');
    await this.publish({ checkpoint: this.previous?.manifest.checkpoint ?? 0, tasks: Object.fromEntries(this.assignment), handoff: { checkpoint, to } });
  }

  private onArmed(m: ArmedNotice): void {
    const handoff = this.handoff;
    if (!this.active || this.phase !== 'arming' || !handoff || m.generation !== this.generation || m.version !== this.version) return;
    if (m.refused.length > 0) {
      this.requestRun(`node ${m.node} cannot hand over ${m.refused.join(', ')} at checkpoint ${handoff.checkpoint}`);
      return;
    }
    handoff.arming.delete(m.node);
    if (handoff.arming.size > 0) return;
    this.phase = 'handingOver';
    this.trigger();
  }

  /** Step 3, after the handoff's checkpoint committed: the moved tasks start on their new nodes from it. */
  private async finishHandoff(handoff: Handoff, checkpoint: number): Promise<void> {
    const owners = new Set(this.assignment.values());
    this.assignment = handoff.target;
    // A node that owned nothing until now owns tasks from this instance on.
    for (const node of new Set(handoff.target.values())) {
      const member = this.members.get(node);
      if (member && !owners.has(node)) this.ownerInstances.set(node, member.instance);
    }
    this.phase = 'resuming';
    for (const t of handoff.moved) this.waitingReady.add(t);
    this.version++;
    this.log.debug({ version: this.version, checkpoint }, 'handoff: moved tasks start');
    await this.publish({ checkpoint, tasks: Object.fromEntries(this.assignment) });
  }

  private endHandoff(): void {
    if (this.handoff) clearTimeout(this.handoff.timeout);
    this.handoff = undefined;
  }

  /** A task of the current run failed: a new run, after a backoff that grows while runs keep failing before a checkpoint commits. */
  private onFailed(generation: number, task: string, error: string): void {
    if (!this.active || generation !== this.generation || this.restarting) return;
    this.restarting = true;
    const delayMs = Math.min(MAX_RESTART_BACKOFF_MS, 250 * 2 ** Math.min(this.failedRuns++, 7));
    this.phase = 'idle';
    setTimeout(() => {
      this.restarting = false;
      this.requestRun(`task ${task} failed: ${error}`);
    }, delayMs).unref();
  }

  private onReady(generation: number, version: number, tasks: readonly string[]): void {
    if (!this.active || generation !== this.generation || version !== this.version) return;
    for (const t of tasks) this.waitingReady.delete(t);
    if (this.waitingReady.size > 0) return;
    if (this.phase === 'starting') {
      this.phase = 'running';
      this.log.info({ generation }, 'every task runs; checkpoints start');
      // A run restored from a checkpoint takes its first one at once: it commits what the tasks replayed since,
      // so that a transactional sink's outputs resume about a commit after a recovery, not an interval later.
      this.schedule(this.waiters.length > 0 || this.previous ? 0 : this.o.descriptor.intervalMs);
    } else if (this.phase === 'resuming' && this.handoff) {
      const handoff = this.handoff;
      const ms = Date.now() - handoff.startedAt;
      this.log.info({ checkpoint: handoff.checkpoint, moved: handoff.moved.length, ms }, 'handoff done');
      this.endHandoff();
      this.phase = 'running';
      this.schedule(this.waiters.length > 0 ? 0 : this.o.descriptor.intervalMs);
    } else {
      return;
    }
    this.serial(() => this.reconsider()); // what changed meanwhile
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.trigger(), delayMs);
  }

  /** Triggers the next checkpoint: while running, or a handoff's once its owners armed. */
  private trigger(): void {
    const handoff = this.handoff;
    const forHandoff = this.phase === 'handingOver' && handoff !== undefined && !handoff.triggered;
    if ((this.phase !== 'running' && !forHandoff) || this.pending) return;
    clearTimeout(this.timer);
    let checkpoint: number;
    if (forHandoff) {
      handoff.triggered = true;
      checkpoint = handoff.checkpoint;
    } else {
      checkpoint = this.nextCheckpoint++;
    }
    const waiters = this.waiters.splice(0);
    const timeout = setTimeout(() => {
      this.log.warn({ checkpoint, missing: this.tasks.filter((t) => !this.pending?.acks.has(t)) }, 'checkpoint timed out');
      this.abandon(`checkpoint ${checkpoint} timed out`);
      if (this.handoff?.checkpoint === checkpoint) this.requestRun(`the handoff's checkpoint ${checkpoint} timed out`);
      else this.schedule(0);
    }, this.o.descriptor.timeoutMs);
    this.pending = { checkpoint, triggeredAt: Date.now(), acks: new Map(), timeout, waiters };
    this.o.channel.send('trigger', { leaderEpoch: this.epoch, generation: this.generation, checkpoint });
  }

  private onAck(ack: TaskAck): void {
    const pending = this.pending;
    if (!pending || ack.generation !== this.generation || ack.checkpoint !== pending.checkpoint) return;
    pending.acks.set(ack.task, ack);
    if (pending.acks.size < this.tasks.length || !this.tasks.every((t) => pending.acks.has(t))) return;
    clearTimeout(pending.timeout);
    this.serial(() => this.commit(pending));
  }

  private async commit(pending: Pending): Promise<void> {
    if (this.pending !== pending) return;
    const job = this.o.channel.job;
    const tasks: Record<string, TaskCheckpoint> = {};
    for (const [task, ack] of pending.acks) tasks[task] = { positions: ack.positions, snapshots: ack.snapshots };
    const manifest = {
      job,
      checkpoint: pending.checkpoint,
      generation: this.generation,
      leaderEpoch: this.epoch,
      completedAt: Date.now(),
      tasks,
    };
    const revision = await this.o.manifests.commit(manifest, this.previous);
    this.previous = { manifest, revision };
    this.pending = undefined;
    this.failedRuns = 0;
    this.o.channel.send('committed', { leaderEpoch: this.epoch, generation: this.generation, checkpoint: pending.checkpoint });
    for (const w of pending.waiters) w.resolve(pending.checkpoint);
    this.log.debug({ checkpoint: pending.checkpoint, ms: Date.now() - pending.triggeredAt }, 'checkpoint committed');
    this.cleanup.offer(manifest.tasks);
    const handoff = this.handoff;
    if (this.phase === 'handingOver' && handoff?.checkpoint === pending.checkpoint) await this.finishHandoff(handoff, pending.checkpoint);
    else if (this.phase === 'handingOver') this.trigger(); // the handoff's checkpoint waited for this one
    else this.schedule(this.waiters.length > 0 ? 0 : this.o.descriptor.intervalMs);
  }

  /** Trims internal streams below what the checkpoint consumed, and collects snapshots no retained checkpoint or savepoint needs. */
  private async afterCommit(tasks: Record<string, TaskCheckpoint>): Promise<void> {
    for (const input of this.o.descriptor.internalInputs) {
      const position = tasks[input.task]?.positions[input.subject];
      if (position) await this.o.jsm.streams.purge(input.stream, { filter: input.subject, seq: position + 1 });
    }
    const job = this.o.channel.job;
    const kept = [...(await this.o.manifests.retained(job)).map((r) => r.manifest), ...(await this.o.savepoints.list(job)).map((s) => s.manifest)];
    const keep = new Map<string, KeptSnapshots>();
    for (const task of this.tasks) {
      const base = tasks[task]?.snapshots[0];
      if (base) keep.set(task, { names: new Set(kept.flatMap((m) => m.tasks[task]?.snapshots ?? [])), base });
    }
    if (keep.size > 0) await this.o.snapshots.collect(keep);
  }

  private abandon(why: string): void {
    const pending = this.pending;
    if (!pending) return;
    clearTimeout(pending.timeout);
    this.pending = undefined;
    // Callers of checkpointNow() wait for the next checkpoint instead.
    this.waiters.push(...pending.waiters);
    this.log.debug({ checkpoint: pending.checkpoint, why }, 'checkpoint abandoned');
  }

  private onError(err: unknown): void {
    if (isMillraceError(err, 'MR_CHECKPOINT_CONFLICT')) {
      // A former leader wrote before this one claimed the job (or a newer one leads: the lease then says so and
      // resigns this node). Start over from what is stored now.
      this.log.warn({ err }, 'another coordinator wrote the job’s manifest or assignment; the job restarts from what is stored');
      if (this.active) setTimeout(() => this.requestRun('after a conflicting write by another coordinator'), 200).unref();
      return;
    }
    this.log.error({ err }, 'coordinator step failed; starting a new run');
    if (this.active) setTimeout(() => this.requestRun('after a coordinator error'), 1000).unref();
  }
}
