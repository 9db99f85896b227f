/**
 * What `millrace cluster status` and `millrace job list|describe|cancel`
 * read and do, as plain JSON-serialisable objects: the members and their
 * last heartbeat, the coordinator lease, and per job its registry entry,
 * the assignment in force, its last committed checkpoint and each task's
 * lag. Everything comes from the cluster's KV buckets and consumers, through
 * the stores that write them; a bucket that does not exist yet reads as
 * empty and is not created (existing-buckets.ts).
 *
 * Ages are measured on this machine's clock against the server's timestamps
 * of the entries (a heartbeat, a lease renewal), so a skew between the two
 * shows in them.
 */
import type { JetStreamClient, JetStreamManager, KV, KvEntry, NatsConnection } from 'nats';
import { AssignmentStore, DEFAULT_ASSIGNMENT_BUCKET, type JobAssignment } from '../assignment/assignment-store.js';
import { DEFAULT_MANIFEST_BUCKET, ManifestStore, type CheckpointManifest } from '../checkpoint/manifest-store.js';
import { DEFAULT_JOB_BUCKET, JobRegistry, type JobDescriptor } from '../jobs/job-registry.js';
import { DEFAULT_LEASE_BUCKET } from '../leader/lease.js';
import { DEFAULT_MEMBER_BUCKET, type MemberInfo } from '../membership/members.js';
import { translateNatsError } from '../transport/nats-errors.js';
import { bucketExists, existingKv, keysOf } from './existing-buckets.js';
import { taskLags } from './task-lag.js';

/** The lease key the coordinator holds (cluster/leader/lease.ts). */
const COORDINATOR_LEASE_KEY = 'coordinator';

export interface NodeStatus extends MemberInfo {
  /** Tasks the assignments of the running jobs give this node. */
  readonly tasks: number;
  /** ms since the node last wrote its membership entry. */
  readonly heartbeatAgeMs: number;
}

export interface LeaderStatus {
  /** The node holding the coordinator lease. */
  readonly node: string;
  /** The leader epoch: the revision of the lease's winning write. */
  readonly epoch: number;
  /** ms since the lease was last renewed. */
  readonly renewedAgeMs: number;
}

export interface AssignmentStatus {
  readonly generation: number;
  readonly version: number;
  readonly leaderEpoch: number;
  /** The checkpoint a task restores from when it starts. */
  readonly checkpoint: number;
  readonly writtenAt: number;
  /** While tasks move: the checkpoint they move at and task → new node; null otherwise. */
  readonly handoff: { readonly checkpoint: number; readonly tasks: Readonly<Record<string, string>> } | null;
}

export interface CheckpointStatus {
  readonly id: number;
  readonly generation: number;
  readonly leaderEpoch: number;
  readonly completedAt: number;
  /** ms since it committed. */
  readonly ageMs: number;
  readonly restoredFrom: CheckpointManifest['restoredFrom'] | null;
}

export interface TaskStatus {
  /** `<job>/<stage>/<partition>` */
  readonly task: string;
  readonly stage: string;
  /** The stream the task reads. */
  readonly input: string;
  /** The node the assignment gives it; null when the job has no assignment yet. */
  readonly node: string | null;
  /** The node it is being handed over to; null when it does not move. */
  readonly movingTo: string | null;
  /** Records of its input not yet delivered to it; null when it has no consumer (not running). */
  readonly lag: number | null;
  /** The durable consumer the lag is read from. */
  readonly consumer: string | null;
  /** Input position in the last checkpoint, subject → last sequence included; null when it has none. */
  readonly checkpointPositions: Readonly<Record<string, number>> | null;
}

export interface JobStatus {
  readonly job: string;
  readonly status: JobDescriptor['status'];
  readonly updatedBy: string;
  readonly updatedAt: number;
  readonly stages: JobDescriptor['stages'];
  readonly assignment: AssignmentStatus | null;
  readonly lastCheckpoint: CheckpointStatus | null;
  readonly tasks: readonly TaskStatus[];
}

export interface ClusterStatus {
  /** Date.now() when read. */
  readonly at: number;
  /** The live members (entries not yet expired or deleted), by id. */
  readonly nodes: readonly NodeStatus[];
  /** null when no node holds the coordinator lease. */
  readonly leader: LeaderStatus | null;
  readonly jobs: readonly JobStatus[];
}

/** One line of `millrace job list`. */
export interface JobSummary {
  readonly job: string;
  readonly status: JobDescriptor['status'];
  readonly tasks: number;
  readonly stages: number;
  readonly updatedBy: string;
  readonly updatedAt: number;
}

const decoder = new TextDecoder();

/** The stores of the buckets that exist; undefined for those that do not. */
interface Stores {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** The registry, and its bucket for the keys (JobRegistry.list() returns only the first job: see keysOf). */
  readonly jobs: { readonly registry: JobRegistry; readonly kv: KV } | undefined;
  readonly assignments: AssignmentStore | undefined;
  readonly manifests: ManifestStore | undefined;
}

async function openStores(nc: NatsConnection): Promise<Stores> {
  const js = nc.jetstream();
  const jsm = await jetStreamManager(nc);
  const [jobKv, assignments, manifests] = await Promise.all([
    existingKv(js, jsm, DEFAULT_JOB_BUCKET),
    openIfExists(jsm, DEFAULT_ASSIGNMENT_BUCKET, () => AssignmentStore.open(js)),
    openIfExists(jsm, DEFAULT_MANIFEST_BUCKET, () => ManifestStore.open(js)),
  ]);
  const jobs = jobKv && { registry: await JobRegistry.open(js), kv: jobKv };
  return { js, jsm, jobs, assignments, manifests };
}

/** The registered jobs, by name. */
async function readJobs({ jobs }: Stores): Promise<JobDescriptor[]> {
  if (!jobs) return [];
  const out: JobDescriptor[] = [];
  for (const key of await keysOf(jobs.kv, DEFAULT_JOB_BUCKET)) {
    const descriptor = await jobs.registry.get(key);
    if (descriptor) out.push(descriptor);
  }
  return out;
}

/** The whole cluster: members, leader, and every registered job with its tasks. */
export async function clusterStatus(nc: NatsConnection): Promise<ClusterStatus> {
  const stores = await openStores(nc);
  const [members, leader, descriptors] = await Promise.all([readMembers(stores), readLeader(stores), readJobs(stores)]);
  const jobs = await Promise.all(descriptors.map((d) => jobStatus(stores, d)));
  const load = new Map<string, number>();
  for (const job of jobs) {
    if (job.status !== 'running') continue;
    for (const task of job.tasks) if (task.node) load.set(task.node, (load.get(task.node) ?? 0) + 1);
  }
  const nodes = members.map((m) => ({ ...m.info, tasks: load.get(m.info.id) ?? 0, heartbeatAgeMs: m.heartbeatAgeMs }));
  return { at: Date.now(), nodes, leader, jobs };
}

/** One job in full; undefined when no job `job` is registered. */
export async function describeJob(nc: NatsConnection, job: string): Promise<JobStatus | undefined> {
  const stores = await openStores(nc);
  const descriptor = await stores.jobs?.registry.get(job);
  return descriptor && jobStatus(stores, descriptor);
}

/** The registered jobs, by name. */
export async function listJobs(nc: NatsConnection): Promise<JobSummary[]> {
  return (await readJobs(await openStores(nc))).map((d) => ({
    job: d.job,
    status: d.status,
    tasks: d.tasks.length,
    stages: d.stages.length,
    updatedBy: d.updatedBy,
    updatedAt: d.updatedAt,
  }));
}

/** Marks `job` cancelled (every node stops its tasks); false when no such job is registered. */
export async function cancelJob(nc: NatsConnection, job: string, by: string): Promise<boolean> {
  const { jobs } = await openStores(nc);
  return (await jobs?.registry.cancel(job, by)) ?? false;
}

async function jobStatus(stores: Stores, descriptor: JobDescriptor): Promise<JobStatus> {
  const { job } = descriptor;
  const [assigned, latest] = await Promise.all([stores.assignments?.current(job), stores.manifests?.latest(job)]);
  const record = assigned?.record;
  const manifest = latest?.manifest;
  const inputs = descriptor.tasks.map((task) => {
    const stage = stageOf(descriptor, task);
    return { task, stage: stage?.id ?? '', stream: stage?.input ?? '' };
  });
  const lags = await taskLags(stores.jsm, job, inputs.filter((i) => i.stream !== ''));
  return {
    job,
    status: descriptor.status,
    updatedBy: descriptor.updatedBy,
    updatedAt: descriptor.updatedAt,
    stages: descriptor.stages,
    assignment: record ? assignmentStatus(record) : null,
    lastCheckpoint: manifest
      ? {
          id: manifest.checkpoint,
          generation: manifest.generation,
          leaderEpoch: manifest.leaderEpoch,
          completedAt: manifest.completedAt,
          ageMs: Math.max(0, Date.now() - manifest.completedAt),
          restoredFrom: manifest.restoredFrom ?? null,
        }
      : null,
    tasks: inputs.map(({ task, stage, stream }) => ({
      task,
      stage,
      input: stream,
      node: record?.tasks[task] ?? null,
      movingTo: record?.handoff?.to[task] ?? null,
      lag: lags.get(task)?.lag ?? null,
      consumer: lags.get(task)?.consumer ?? null,
      checkpointPositions: manifest?.tasks[task]?.positions ?? null,
    })),
  };
}

function assignmentStatus(record: JobAssignment): AssignmentStatus {
  return {
    generation: record.generation,
    version: record.version,
    leaderEpoch: record.leaderEpoch,
    checkpoint: record.checkpoint,
    writtenAt: record.writtenAt,
    handoff: record.handoff ? { checkpoint: record.handoff.checkpoint, tasks: record.handoff.to } : null,
  };
}

/** The stage of task `<job>/<stage>/<partition>`. */
function stageOf(descriptor: JobDescriptor, task: string): JobDescriptor['stages'][number] | undefined {
  const id = task.slice(descriptor.job.length + 1).split('/')[0];
  return descriptor.stages.find((s) => s.id === id);
}

async function readMembers({ js, jsm }: Stores): Promise<{ info: MemberInfo; heartbeatAgeMs: number }[]> {
  const kv = await existingKv(js, jsm, DEFAULT_MEMBER_BUCKET);
  if (!kv) return [];
  const out: { info: MemberInfo; heartbeatAgeMs: number }[] = [];
  for (const key of await keysOf(kv, DEFAULT_MEMBER_BUCKET)) {
    let entry: KvEntry | null;
    try {
      entry = await kv.get(key);
    } catch (err) {
      throw translateNatsError(err, `cannot read member "${key}" in bucket "${DEFAULT_MEMBER_BUCKET}"`);
    }
    // An entry may be deleted (a node left) between the listing and the read.
    if (entry?.operation === 'PUT') out.push({ info: JSON.parse(decoder.decode(entry.value)) as MemberInfo, heartbeatAgeMs: ageOf(entry) });
  }
  return out;
}

async function readLeader({ js, jsm }: Stores): Promise<LeaderStatus | null> {
  const kv = await existingKv(js, jsm, DEFAULT_LEASE_BUCKET);
  if (!kv) return null;
  let entry: KvEntry | null;
  try {
    entry = await kv.get(COORDINATOR_LEASE_KEY);
  } catch (err) {
    throw translateNatsError(err, `cannot read the coordinator lease in bucket "${DEFAULT_LEASE_BUCKET}"`);
  }
  if (entry?.operation !== 'PUT') return null;
  const holder = JSON.parse(decoder.decode(entry.value)) as { node: string; epoch: number };
  // As lease.ts reads it: the first write of a lease carries epoch 0, its epoch is that write's revision.
  return { node: holder.node, epoch: holder.epoch || entry.revision, renewedAgeMs: ageOf(entry) };
}

async function openIfExists<T>(jsm: JetStreamManager, bucket: string, open: () => Promise<T>): Promise<T | undefined> {
  return (await bucketExists(jsm, bucket)) ? open() : undefined;
}

/** ms from the server's timestamp of `entry` to now on this clock; never negative. */
function ageOf(entry: KvEntry): number {
  return Math.max(0, Date.now() - entry.created.getTime());
}

async function jetStreamManager(nc: NatsConnection): Promise<JetStreamManager> {
  try {
    return await nc.jetstreamManager();
  } catch (err) {
    throw translateNatsError(err, 'the NATS server has no JetStream (start nats-server with -js)');
  }
}
