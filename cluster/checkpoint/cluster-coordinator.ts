/**
 * The coordinator role of a node (one per cluster: the holder of the leader
 * lease). While leading, it listens to every job's hello and coordinates
 * each job it hears of with a JobCoordinator; a job whose nodes are not all
 * in its current run gets a new run. When the lease is lost it resigns
 * every job at once. It also answers savepoint requests (`millrace
 * savepoint create`): a checkpoint now, kept under the requested name.
 */
import type { JetStreamManager, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { ErrorCodes, isMillraceError, millraceError } from '../../errors.js';
import {
  ALL_HELLOS,
  ControlChannel,
  jobOfControlSubject,
  savepointSubject,
  subscribeJson,
  type HelloNotice,
  type SavepointReply,
  type SavepointRequest,
} from './control.js';
import { JobCoordinator } from './coordinator.js';
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
  readonly logger: Logger;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ClusterCoordinator {
  private epoch = 0;
  private sub: Subscription | undefined;
  private savepointSub: Subscription | undefined;
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
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.savepointSub?.unsubscribe();
    this.savepointSub = undefined;
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
