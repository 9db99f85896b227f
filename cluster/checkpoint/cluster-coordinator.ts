/**
 * The coordinator role of a node (one per cluster: the holder of the leader
 * lease). While leading, it listens to every job's hello and coordinates
 * each job it hears of with a JobCoordinator; a job whose nodes are not all
 * in its current run gets a new run. When the lease is lost it resigns
 * every job at once.
 */
import type { JetStreamManager, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { ALL_HELLOS, ControlChannel, jobOfControlSubject, subscribeJson, type HelloNotice } from './control.js';
import { JobCoordinator } from './coordinator.js';
import type { ManifestStore } from './manifest-store.js';
import type { RunStore } from './run-store.js';
import type { SnapshotStore } from './snapshot-store.js';
import type { LeaseStatus } from '../leader/lease.js';

export interface ClusterCoordinatorDeps {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly manifests: ManifestStore;
  readonly runs: RunStore;
  readonly snapshots: SnapshotStore;
  readonly logger: Logger;
}

export class ClusterCoordinator {
  private epoch = 0;
  private sub: Subscription | undefined;
  private readonly jobs = new Map<string, JobCoordinator>();

  constructor(private readonly deps: ClusterCoordinatorDeps) {}

  /** The coordinator of `job`, while this node leads and has heard of it. */
  job(job: string): JobCoordinator | undefined {
    return this.jobs.get(job);
  }

  /** Follows the leader lease. */
  leadership(status: LeaseStatus): void {
    if (status.role === 'leader') this.lead(status.epoch);
    else this.resign();
  }

  close(): void {
    this.resign();
  }

  private lead(epoch: number): void {
    if (this.epoch === epoch) return;
    this.resign();
    this.epoch = epoch;
    this.sub = subscribeJson<HelloNotice>(
      this.deps.nc,
      ALL_HELLOS,
      (hello, subject) => this.onHello(jobOfControlSubject(subject), hello),
      (err) => this.deps.logger.warn({ err }, 'malformed hello'),
    );
  }

  private resign(): void {
    this.epoch = 0;
    this.sub?.unsubscribe();
    this.sub = undefined;
    for (const c of this.jobs.values()) c.close();
    this.jobs.clear();
  }

  private onHello(job: string, hello: HelloNotice): void {
    let coordinator = this.jobs.get(job);
    if (!coordinator) {
      coordinator = new JobCoordinator({
        ...this.deps,
        channel: new ControlChannel(this.deps.nc, job),
        tasks: hello.tasks,
        internalInputs: new Map(hello.internalInputs.map((i) => [i.task, { stream: i.stream, subject: i.subject }])),
        intervalMs: hello.intervalMs,
        timeoutMs: hello.timeoutMs,
        heartbeatMs: hello.heartbeatMs,
        memberTimeoutMs: hello.memberTimeoutMs,
      });
      this.jobs.set(job, coordinator);
      coordinator.lead(this.epoch); // a new leader starts a new run of every job it takes over
    }
    coordinator.hello(hello);
  }
}
