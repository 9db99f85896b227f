/**
 * The checkpoint coordinator of one job (ARCHITECTURE, checkpoints; decision
 * 003). It acts only while its node holds the leader lease, and stamps every
 * command with the lease's epoch.
 *
 * - Its nodes are those whose hellos it hears; a node silent for
 *   `memberTimeoutMs`, or one that says it leaves, is gone.
 * - On taking the lease (once the previous run's nodes are back, at most two
 *   heartbeats later, to hear from every node), and
 *   whenever a node joins, restarts, leaves or dies, or a task fails, it
 *   starts a new run: the next generation, restored from the last committed
 *   checkpoint (Flink's full restart), with the tasks assigned to the live
 *   nodes (balanced, sticky: assignment.ts). It triggers checkpoints once
 *   every task reports ready in that generation.
 * - Every `intervalMs` (or on demand) it triggers checkpoint n on the source
 *   tasks and collects one acknowledgement per task. When all are in, it
 *   writes the manifest with compare-and-set: that write is the commit. Then
 *   it tells the nodes (transactional sinks publish); every few seconds it
 *   trims internal streams below what the newest checkpoint consumed and
 *   collects unneeded snapshots.
 * - A checkpoint not complete within `timeoutMs` is abandoned; the next one
 *   covers its epoch too.
 * - A commit refused as stale (MR_CHECKPOINT_CONFLICT) means another node
 *   leads: this one stops coordinating.
 */
import type { JetStreamManager } from 'nats';
import type { Logger } from 'pino';
import { isMillraceError } from '../../errors.js';
import { assignTasks, movedTasks, type Assignment } from './assignment.js';
import { LatestOnly } from './latest-only.js';
import { ControlChannel, type HelloNotice, type TaskAck } from './control.js';
import type { CheckpointManifest, ManifestStore, StoredManifest, TaskCheckpoint } from './manifest-store.js';
import type { RunStore } from './run-store.js';
import type { SavepointStore } from './savepoints.js';
import type { KeptSnapshots, SnapshotStore } from './snapshot-store.js';

export interface CoordinatorOptions {
  readonly channel: ControlChannel;
  readonly manifests: ManifestStore;
  readonly runs: RunStore;
  readonly snapshots: SnapshotStore;
  readonly savepoints: SavepointStore;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  /** Every task of the job. */
  readonly tasks: readonly string[];
  /** Tasks that read an internal stream: trimmed after each commit. */
  readonly internalInputs: ReadonlyMap<string, { readonly stream: string; readonly subject: string }>;
  /** @default 1000 */
  readonly intervalMs: number;
  /** @default 60000 */
  readonly timeoutMs: number;
  /** How often nodes say hello. @default 1000 */
  readonly heartbeatMs: number;
  /** A node silent this long is gone. @default 5000 */
  readonly memberTimeoutMs: number;
}

const MAX_RESTART_BACKOFF_MS = 30_000;
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

export class JobCoordinator {
  private epoch = 0;
  private generation = 0;
  private previous: StoredManifest | undefined;
  private nextCheckpoint = 1;
  private readonly ready = new Set<string>();
  private running = false;
  private pending: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private waiters: Pending['waiters'] = [];
  /** Runs that failed since the last commit: the backoff before the next. */
  private failedRuns = 0;
  private restarting = false;
  /** Live nodes: when each was last heard from, and its instance then. */
  private readonly members = new Map<string, { seen: number; instance: string }>();
  /** The nodes the current run was assigned to, with their instances. */
  private runMembers = new Map<string, string>();
  private assignment: Assignment = new Map();
  /**
   * Until the first run, the coordinator only listens (hears every node's
   * hello): for two heartbeats, or until every node of the job's previous
   * run (RunStore) is back.
   */
  private gathering = true;
  private previousRunNodes: readonly string[] | undefined;
  private runRequested = false;
  private membership: NodeJS.Timeout | undefined;
  private gatherTimer: NodeJS.Timeout | undefined;
  /** When members were last checked for silence. */
  private lastExpiry = Date.now();
  /** Serializes run changes and commits. */
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

  constructor(private readonly o: CoordinatorOptions) {
    this.log = o.logger.child({ job: o.channel.job, role: 'coordinator' });
    const onError = (err: unknown) => this.log.warn({ err }, 'malformed control message');
    o.channel.on('failed', (m) => this.onFailed(m.generation, m.task, m.error), onError);
    o.channel.on('ready', (m) => this.onReady(m.generation, m.tasks), onError);
    o.channel.on('ack', (m) => this.onAck(m), onError);
    o.channel.on('leave', (m) => this.leave(m.node), onError);
  }

  /** Whether this coordinator leads the job now. */
  get active(): boolean {
    return this.epoch > 0;
  }

  /**
   * This node took the lease with `epoch`: after two heartbeats (so every
   * live node has said hello), start a new run of the job.
   */
  lead(epoch: number): void {
    if (this.epoch === epoch) return;
    this.epoch = epoch;
    this.gathering = true;
    clearInterval(this.membership);
    clearTimeout(this.gatherTimer);
    this.lastExpiry = Date.now();
    this.membership = setInterval(() => this.expireMembers(), this.o.heartbeatMs);
    this.previousRunNodes = undefined;
    this.gatherTimer = setTimeout(() => this.endGathering('after two heartbeats'), 2 * this.o.heartbeatMs).unref();
    this.o.runs.current(this.o.channel.job).then(
      (run) => {
        if (this.epoch !== epoch) return;
        this.previousRunNodes = run.nodes;
        this.endGatheringIfAllBack();
      },
      (err: unknown) => this.log.debug({ err }, 'cannot read the previous run; gathering for two heartbeats'),
    );
  }

  /** Every node of the previous run said hello: no one else is to be waited for. */
  private endGatheringIfAllBack(): void {
    const nodes = this.previousRunNodes;
    if (this.gathering && nodes && nodes.length > 0 && nodes.every((n) => this.members.has(n))) this.endGathering('every node of the previous run is back');
  }

  private endGathering(reason: string): void {
    if (!this.gathering || !this.active) return;
    this.gathering = false;
    clearTimeout(this.gatherTimer);
    this.requestRun(`leader epoch ${this.epoch}, ${reason}`);
  }

  /**
   * A node says it is alive and which run it is in. A node new to the run,
   * or one that restarted (no run yet), makes a new run; one left behind in an
   * older run (it missed the command) is told the current one again.
   */
  hello(hello: HelloNotice): void {
    if (!this.active) return;
    this.members.set(hello.node, { seen: Date.now(), instance: hello.instance });
    if (this.gathering) {
      this.endGatheringIfAllBack();
      return;
    }
    const inRun = this.runMembers.get(hello.node);
    if (inRun === undefined) this.requestRun(`node ${hello.node} joined`);
    else if (inRun !== hello.instance) this.requestRun(`node ${hello.node} restarted`);
    else if (hello.generation < this.generation) this.sendRun();
  }

  /** A node stops running the job: its tasks move now, without waiting for its silence. */
  leave(node: string): void {
    if (!this.active || !this.members.delete(node)) return;
    if (!this.gathering && this.runMembers.has(node)) this.requestRun(`node ${node} left`);
  }

  /** This node lost (or gave up) the lease. */
  resign(): void {
    if (!this.active) return;
    this.log.info({ epoch: this.epoch }, 'no longer coordinating');
    this.epoch = 0;
    this.running = false;
    this.abandon('this node no longer leads');
    clearTimeout(this.timer);
    clearInterval(this.membership);
    clearTimeout(this.gatherTimer);
    this.cleanup.cancel();
    this.members.clear();
    this.runMembers.clear();
  }

  /** The manifest of the last checkpoint this coordinator committed or started from. */
  get lastCommitted(): CheckpointManifest | undefined {
    return this.previous?.manifest;
  }

  /** Takes a checkpoint now; resolves with its id once committed. */
  checkpointNow(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (this.running && !this.pending) this.trigger();
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

  /** Nodes silent for `memberTimeoutMs` are gone; a run that had one restarts without it. */
  private expireMembers(): void {
    const now = Date.now();
    if (now - this.lastExpiry > this.o.memberTimeoutMs / 2) {
      // This process stalled (GC, CPU starvation, SIGSTOP): the hellos it did not read are no sign of dead nodes.
      for (const m of this.members.values()) m.seen = Math.max(m.seen, now - this.o.heartbeatMs);
    }
    this.lastExpiry = now;
    const deadline = now - this.o.memberTimeoutMs;
    for (const [node, { seen }] of this.members) {
      if (seen >= deadline) continue;
      this.members.delete(node);
      this.log.warn({ node, silentMs: Date.now() - seen }, 'node silent too long: taken for dead');
      if (!this.gathering && this.runMembers.has(node)) this.requestRun(`node ${node} is silent`);
    }
  }

  /** Queues a new run unless one is queued already (several joins at once make one run). */
  private requestRun(why: string): void {
    if (this.runRequested) return;
    this.runRequested = true;
    this.serial(() => this.newRun(why));
  }

  private async newRun(why: string): Promise<void> {
    this.runRequested = false;
    if (!this.active) return;
    this.running = false;
    this.abandon('the job restarts');
    clearTimeout(this.timer);
    this.ready.clear();
    // Between runs there is none: readies, acks and failures of the old one no longer count.
    this.generation = 0;
    // The members now make this run; one that says hello while it starts makes the next.
    this.runMembers = new Map([...this.members].map(([node, m]) => [node, m.instance]));
    if (this.runMembers.size === 0) {
      this.log.warn({ why }, 'no live node to run the job on; waiting for one');
      return;
    }
    const previous = await this.o.manifests.latest(this.o.channel.job);
    const generation = await this.o.runs.next(this.o.channel.job, [...this.runMembers.keys()].sort());
    if (!this.active) return;
    this.previous = previous;
    this.generation = generation;
    const checkpoint = previous?.manifest.checkpoint ?? 0;
    this.nextCheckpoint = Math.max(this.nextCheckpoint, checkpoint + 1);
    const before = this.assignment;
    this.assignment = assignTasks(this.o.tasks, [...this.runMembers.keys()], before);
    const moved = before.size === 0 ? [] : movedTasks(this.assignment, before);
    this.log.info({ generation, checkpoint, why, nodes: [...this.runMembers.keys()].sort(), moved }, 'new run of the job');
    this.sendRun();
  }

  private sendRun(): void {
    const checkpoint = this.previous?.manifest.checkpoint ?? 0;
    const assignment = Object.fromEntries(this.assignment);
    this.o.channel.send('run', { leaderEpoch: this.epoch, generation: this.generation, checkpoint, assignment });
  }

  /** A task of the current run failed: a new run, after a backoff that grows while runs keep failing before a checkpoint commits. */
  private onFailed(generation: number, task: string, error: string): void {
    if (!this.active || generation !== this.generation || this.restarting) return;
    this.restarting = true;
    const delayMs = Math.min(MAX_RESTART_BACKOFF_MS, 250 * 2 ** Math.min(this.failedRuns++, 7));
    this.running = false;
    setTimeout(() => {
      this.restarting = false;
      this.requestRun(`task ${task} failed: ${error}`);
    }, delayMs).unref();
  }

  private onReady(generation: number, tasks: readonly string[]): void {
    if (!this.active || generation !== this.generation) return;
    for (const t of tasks) this.ready.add(t);
    if (this.running || !this.o.tasks.every((t) => this.ready.has(t))) return;
    this.running = true;
    this.log.info({ generation }, 'every task runs; checkpoints start');
    // A run restored from a checkpoint takes its first one at once: it commits what the tasks replayed since,
    // so that a transactional sink's outputs resume about a commit after a recovery, not an interval later.
    this.schedule(this.waiters.length > 0 || this.previous ? 0 : this.o.intervalMs);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.trigger(), delayMs);
  }

  private trigger(): void {
    clearTimeout(this.timer);
    if (!this.running || this.pending) return;
    const checkpoint = this.nextCheckpoint++;
    const waiters = this.waiters.splice(0);
    const timeout = setTimeout(() => {
      this.log.warn({ checkpoint, missing: this.o.tasks.filter((t) => !this.pending?.acks.has(t)) }, 'checkpoint timed out');
      this.abandon(`checkpoint ${checkpoint} timed out`);
      this.schedule(0);
    }, this.o.timeoutMs);
    this.pending = { checkpoint, triggeredAt: Date.now(), acks: new Map(), timeout, waiters };
    this.o.channel.send('trigger', { leaderEpoch: this.epoch, generation: this.generation, checkpoint });
  }

  private onAck(ack: TaskAck): void {
    const pending = this.pending;
    if (!pending || ack.generation !== this.generation || ack.checkpoint !== pending.checkpoint) return;
    pending.acks.set(ack.task, ack);
    if (pending.acks.size < this.o.tasks.length || !this.o.tasks.every((t) => pending.acks.has(t))) return;
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
    this.schedule(this.waiters.length > 0 ? 0 : this.o.intervalMs);
    this.cleanup.offer(manifest.tasks);
  }

  /** Trims internal streams below what the checkpoint consumed, and collects snapshots no retained checkpoint or savepoint needs. */
  private async afterCommit(tasks: Record<string, TaskCheckpoint>): Promise<void> {
    for (const [task, input] of this.o.internalInputs) {
      const position = tasks[task]?.positions[input.subject];
      if (position) await this.o.jsm.streams.purge(input.stream, { filter: input.subject, seq: position + 1 });
    }
    const job = this.o.channel.job;
    const kept = [...(await this.o.manifests.retained(job)).map((r) => r.manifest), ...(await this.o.savepoints.list(job)).map((s) => s.manifest)];
    const keep = new Map<string, KeptSnapshots>();
    for (const task of this.o.tasks) {
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
      this.log.warn({ err }, 'another coordinator committed: stepping down');
      this.resign();
      return;
    }
    this.log.error({ err }, 'coordinator step failed; starting a new run');
    if (this.active) setTimeout(() => this.requestRun('after a coordinator error'), 1000).unref();
  }
}
