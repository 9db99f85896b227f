/**
 * The coordinator role of a node (one per cluster: the holder of the leader
 * lease). While leading, it coordinates every running job of the job
 * registry with a JobCoordinator, and tells each one which live members can
 * run it (membership bucket) and how much capacity other jobs leave them.
 * When the lease is lost it resigns every job at once. It also answers
 * savepoint requests (`millrace savepoint create`): a checkpoint now, kept
 * under the requested name.
 */
import type { JetStreamManager, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { ErrorCodes, isMillraceError, millraceError } from '../../errors.js';
import type { AssignmentStore } from '../assignment/assignment-store.js';
import type { JobDescriptor } from '../jobs/job-registry.js';
import type { MemberWatch } from '../membership/members.js';
import { ControlChannel, jobOfControlSubject, savepointSubject, type SavepointReply, type SavepointRequest } from './control.js';
import { JobCoordinator, type JobMember } from './coordinator.js';
import type { ManifestStore } from './manifest-store.js';
import type { RunStore } from './run-store.js';
import type { SavepointStore } from './savepoints.js';
import type { SnapshotStore } from './snapshot-store.js';
import type { LeaseStatus } from '../leader/lease.js';

export interface ClusterCoordinatorDeps {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly manifests: ManifestStore;
  readonly runs: RunStore;
  readonly snapshots: SnapshotStore;
  readonly savepoints: SavepointStore;
  readonly assignments: AssignmentStore;
  readonly members: MemberWatch;
  readonly logger: Logger;
  /** A handoff not finished this long after it started becomes a run. */
  readonly handoffTimeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ClusterCoordinator {
  private epoch = 0;
  private savepointSub: Subscription | undefined;
  private readonly jobs = new Map<string, JobCoordinator>();
  /** Every job of the registry, running or cancelled, as last seen. */
  private readonly descriptors = new Map<string, JobDescriptor>();

  constructor(private readonly deps: ClusterCoordinatorDeps) {}

  /** The coordinator of `job`, while this node leads and the job runs. */
  job(job: string): JobCoordinator | undefined {
    return this.jobs.get(job);
  }

  /** Follows the leader lease. */
  leadership(status: LeaseStatus): void {
    if (status.role === 'leader') this.lead(status.epoch);
    else this.resign();
  }

  /** A job entry of the registry was written: coordinate it if it runs, stop if it was cancelled. */
  jobChanged(descriptor: JobDescriptor): void {
    const before = this.descriptors.get(descriptor.job);
    this.descriptors.set(descriptor.job, descriptor);
    if (!this.active) return;
    const coordinator = this.jobs.get(descriptor.job);
    if (descriptor.status === 'cancelled') {
      coordinator?.close();
      this.jobs.delete(descriptor.job);
      if (coordinator) this.deps.logger.info({ job: descriptor.job }, 'job cancelled: no longer coordinated');
      return;
    }
    if (coordinator && before && JSON.stringify(before.tasks) === JSON.stringify(descriptor.tasks)) return;
    coordinator?.close(); // a job submitted again with other tasks starts over
    this.coordinate(descriptor);
  }

  /** The membership changed: every job hears of the members that can run it. */
  membersChanged(): void {
    for (const [job, coordinator] of this.jobs) coordinator.setMembers(this.membersOf(job));
  }

  close(): void {
    this.resign();
  }

  private get active(): boolean {
    return this.epoch > 0;
  }

  private lead(epoch: number): void {
    if (this.epoch === epoch) return;
    this.resign();
    this.epoch = epoch;
    for (const descriptor of this.descriptors.values()) if (descriptor.status === 'running') this.coordinate(descriptor);
    this.savepointSub = this.deps.nc.subscribe(savepointSubject('*'), {
      callback: (err, msg) => {
        if (err) return;
        const reply = (body: SavepointReply) => msg.respond(encoder.encode(JSON.stringify(body)));
        this.savepoint(jobOfControlSubject(msg.subject), msg.data).then(reply, (e: unknown) =>
          reply({ ok: false, code: isMillraceError(e) ? e.code : 'MR_INTERNAL', message: (e as Error)?.message ?? String(e) }),
        );
      },
    });
  }

  private coordinate(descriptor: JobDescriptor): void {
    const coordinator = new JobCoordinator({
      ...this.deps,
      channel: new ControlChannel(this.deps.nc, descriptor.job),
      descriptor,
      capacity: (node) => this.capacityLeft(node, descriptor.job),
    });
    this.jobs.set(descriptor.job, coordinator);
    coordinator.setMembers(this.membersOf(descriptor.job));
    coordinator.lead(this.epoch); // a new leader starts a new run of every job it takes over
  }

  /** The live members that have `job`. */
  private membersOf(job: string): Map<string, JobMember> {
    const members = new Map<string, JobMember>();
    for (const [node, { info }] of this.deps.members.members()) {
      if (info.jobs.includes(job)) members.set(node, { instance: info.instance, leaving: info.leaving });
    }
    return members;
  }

  /** What `node` can take of `job`: its capacity less the tasks of the other jobs assigned to it. */
  private capacityLeft(node: string, job: string): number | undefined {
    const capacity = this.deps.members.members().get(node)?.info.capacity;
    if (capacity === null || capacity === undefined) return undefined;
    let used = 0;
    for (const [other, coordinator] of this.jobs) {
      if (other === job) continue;
      for (const owner of coordinator.current.values()) if (owner === node) used++;
    }
    return Math.max(0, capacity - used);
  }

  /** Takes a checkpoint of `job` now and keeps it as the savepoint the request names. */
  private async savepoint(job: string, body: Uint8Array): Promise<SavepointReply> {
    const { name } = JSON.parse(decoder.decode(body)) as SavepointRequest;
    const coordinator = this.jobs.get(job);
    if (!coordinator) {
      throw millraceError(ErrorCodes.SAVEPOINT_INVALID, `no node runs a job "${job}" (the coordinator has not heard of it)`, { details: { job } });
    }
    const checkpoint = await coordinator.checkpointNow();
    const manifest =
      coordinator.lastCommitted?.checkpoint === checkpoint
        ? coordinator.lastCommitted
        : (await this.deps.manifests.retained(job)).find((r) => r.manifest.checkpoint === checkpoint)?.manifest;
    if (!manifest) throw millraceError(ErrorCodes.SAVEPOINT_INVALID, `checkpoint ${checkpoint} of job "${job}" is no longer retained`, { details: { job, checkpoint } });
    await this.deps.savepoints.create(name, manifest);
    this.deps.logger.info({ job, savepoint: name, checkpoint }, 'savepoint created');
    return { ok: true, savepoint: { name, checkpoint, tasks: Object.keys(manifest.tasks).length } };
  }

  private resign(): void {
    this.epoch = 0;
    this.savepointSub?.unsubscribe();
    this.savepointSub = undefined;
    for (const c of this.jobs.values()) c.close();
    this.jobs.clear();
  }
}
