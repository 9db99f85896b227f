/**
 * A millrace node: one process with a NATS connection, a LevelDB data dir and
 * the tasks of its jobs. `startNode()` is the in-code entry; the CLI's
 * `millrace node start` calls it.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JetStreamManager, NatsConnection } from 'nats';
import pino, { type Logger } from 'pino';
import { resolveConfig, type NodeConfig, type NodeConfigInput } from '../config/index.js';
import { ErrorCodes, millraceError } from '../errors.js';
import type { JobDefinition } from '../runtime/api/index.js';
import type { StateBackend } from '../runtime/state/backend.js';
import { openLevelDbBackend } from '../runtime/state/leveldb-backend.js';
import type { DeadLetterHandler } from '../runtime/task/ports.js';
import type { Task } from '../runtime/task/task.js';
import { AssignmentStore } from './assignment/assignment-store.js';
import { startEmbeddedNats } from './embedded-nats.js';
import { JobRegistry } from './jobs/job-registry.js';
import { Membership, MemberWatch } from './membership/members.js';
import { ManifestStore } from './checkpoint/manifest-store.js';
import { ClusterCoordinator } from './checkpoint/cluster-coordinator.js';
import { RunStore } from './checkpoint/run-store.js';
import { SavepointStore } from './checkpoint/savepoints.js';
import { DEFAULT_SNAPSHOT_BUCKET, SnapshotStore } from './checkpoint/snapshot-store.js';
import { WorkerBlobTransfer } from './checkpoint/snapshot-transfer.js';
import { JobRunner } from './job-runner.js';
import { LeaderLease } from './leader/lease.js';
import { loadJobModule } from './job-loader.js';
import { connectNats } from './transport/connection.js';
import { translateNatsError } from './transport/nats-errors.js';
import type { NatsServerProcess } from './transport/nats-server-process.js';

export interface StartNodeOptions {
  /** Jobs to run besides those the config names as modules. */
  jobs?: readonly JobDefinition[];
  /** @default a pino logger to stdout at the config's level */
  logger?: Logger;
  /** Receives every record a task skips. @default log only */
  deadLetter?: DeadLetterHandler;
}

export interface MillraceNode {
  readonly id: string;
  readonly config: NodeConfig;
  /** The NATS URL in use (the embedded server's when none was configured). */
  readonly natsUrl: string;
  readonly logger: Logger;
  /** The tasks running on this node. */
  tasks(): readonly Task[];
  /** Starts another job on this node; resolves once its tasks run. */
  runJob(definition: JobDefinition): Promise<void>;
  /** Takes a checkpoint of `job` now (this node must coordinate); resolves with its id once committed. */
  checkpoint(job: string): Promise<number>;
  /**
   * Leaves the cluster and closes everything. Idempotent. By default the
   * node first hands its tasks over to the other nodes at a checkpoint (at
   * most `cluster.leaveTimeoutMs`); with `handOver: false`, or when no other
   * node runs its jobs, it stops them at once (what they did since the last
   * checkpoint is replayed wherever they run next).
   */
  stop(options?: { handOver?: boolean }): Promise<void>;
}

/** The millrace version, for the membership entry. */
const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export async function startNode(input: NodeConfigInput | NodeConfig = {}, options: StartNodeOptions = {}): Promise<MillraceNode> {
  const config = resolveConfig(input);
  const logger = options.logger ?? pino({ level: config.logLevel, base: { node: config.nodeId } });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });

  const closers: (() => Promise<unknown> | void)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch((err) => logger.warn({ err }, 'error while stopping'));
  };
  try {
    const jobs = [...(options.jobs ?? [])];
    for (const path of config.jobs) jobs.push(await loadJobModule(path));
    checkUniqueNames(jobs);

    let embedded: NatsServerProcess | undefined;
    let servers = config.nats.servers;
    if (servers.length === 0) {
      embedded = await startEmbeddedNats({ dataDir, port: config.nats.embeddedPort, binary: config.nats.embeddedBinary });
      closers.push(() => embedded!.stop());
      servers = [embedded.url];
      logger.info({ url: embedded.url, store: embedded.storeDir }, 'embedded nats-server started');
    }
    // Two connections: the server reads each one's messages in order, so the
    // lease renewals, heartbeats and checkpoint commands on `control` never
    // wait behind the tens of thousands of records a node's tasks have in
    // flight on `nc` (a renewal stuck behind them let the lease expire).
    const nc = await connectNats({ servers, name: `${config.nats.name}:${config.nodeId}` });
    closers.push(() => nc.drain());
    const control = await connectNats({ servers, name: `${config.nats.name}:${config.nodeId}:control` });
    closers.push(() => control.drain());
    const jsm = await jetStreamManager(nc);
    const js = nc.jetstream();
    const controlJs = control.jetstream();
    const controlJsm = await jetStreamManager(control);
    const backend: StateBackend = await openLevelDbBackend(join(dataDir, 'state'));
    closers.push(() => backend.close());

    // Every JetStream asset the node may create gets the configured copies (a bucket that exists keeps its own).
    const replicas = config.nats.replicas;
    const transfer = new WorkerBlobTransfer({ servers, name: `${config.nats.name}:${config.nodeId}:snapshots`, bucket: DEFAULT_SNAPSHOT_BUCKET, replicas, logger });
    transfer.open();
    closers.push(() => transfer.close());
    const [manifests, runs, snapshots, savepoints, assignments, registry] = await Promise.all([
      ManifestStore.open(controlJs, { replicas }),
      RunStore.open(controlJs, { replicas }),
      SnapshotStore.open(js, { transfer, replicas }),
      SavepointStore.open(controlJs, { replicas }),
      AssignmentStore.open(controlJs, { replicas }),
      JobRegistry.open(controlJs, { replicas }),
    ]);
    const runners: JobRunner[] = [];
    const { heartbeatMs, memberTimeoutMs } = config.cluster;
    // Heartbeats go on the control connection too: a renewal queued behind records let a lease expire.
    const membership = await Membership.join(
      controlJs,
      {
        id: config.nodeId,
        instance: randomUUID(),
        address: `${hostname()}:${process.pid}`,
        capacity: config.cluster.capacity ?? null,
        version: VERSION,
        startedAt: Date.now(),
        jobs: [],
        leaving: false,
      },
      { heartbeatMs, ttlMs: memberTimeoutMs, replicas },
      logger,
    );
    closers.push(() => membership.leave());
    let coordinator: ClusterCoordinator | undefined;
    let sharedId = false;
    const members = await MemberWatch.open(
      controlJs,
      {
        ttlMs: memberTimeoutMs,
        checkMs: heartbeatMs,
        replicas,
        onChange: (_change, member) => {
          if (member.id === config.nodeId && member.instance !== membership.current.instance && !sharedId) {
            sharedId = true; // said once
            logger.error({ nodeId: member.id, other: member.address }, 'another live node uses this node id: give every node its own (cluster.nodeId, --node-id)');
          }
          coordinator?.membersChanged();
        },
      },
      logger,
    );
    closers.push(() => members.close());
    coordinator = new ClusterCoordinator({
      nc: control,
      jsm: controlJsm,
      manifests,
      runs,
      snapshots,
      savepoints,
      assignments,
      members,
      logger,
      handoffTimeoutMs: config.cluster.handoffTimeoutMs,
    });
    const clusterCoordinator = coordinator;
    closers.push(() => clusterCoordinator.close());
    const stopWatchingJobs = await registry.watch((descriptor) => {
      clusterCoordinator.jobChanged(descriptor);
      const runner = runners.find((r) => r.plan.job === descriptor.job);
      if (descriptor.status === 'cancelled' && runner) void dropJob(runner, `cancelled by ${descriptor.updatedBy}`);
    }, logger);
    closers.push(stopWatchingJobs);
    const dropJob = async (runner: JobRunner, why: string) => {
      runners.splice(runners.indexOf(runner), 1);
      await membership.update({ jobs: runners.map((r) => r.plan.job) });
      await runner.stop();
      logger.info({ job: runner.plan.job, why }, 'job stopped on this node');
    };
    const lease = await LeaderLease.campaign(controlJs, {
      replicas,
      nodeId: config.nodeId,
      ttlMs: config.checkpoint.leaseTtlMs,
      onChange: (status) => {
        logger.info({ status }, status.role === 'leader' ? 'this node now coordinates' : 'coordinator lease status');
        clusterCoordinator.leadership(status);
      },
    });
    clusterCoordinator.leadership(lease.current);
    closers.push(() => lease.stop());
    closers.push(() => Promise.all(runners.map((r) => r.stop())));
    const runJob = async (definition: JobDefinition) => {
      checkUniqueNames([...runners.map((r) => r.definition), definition]);
      const runner = new JobRunner(definition, {
        nc,
        control,
        js,
        jsm,
        backend,
        manifests,
        snapshots,
        assignments,
        jobs: registry,
        leaderEpoch: () => (lease.current.role === 'stopped' ? 0 : (lease.current.epoch ?? 0)),
        instance: membership.current.instance,
        config,
        logger,
        deadLetter: options.deadLetter,
      });
      runners.push(runner);
      await membership.update({ jobs: runners.map((r) => r.plan.job) });
      await runner.start();
    };
    for (const definition of jobs) await runJob(definition);

    let stopped: Promise<void> | undefined;
    /** Set by stop({ handOver: false }): a hand-over in progress waits no longer. */
    let cutHandOverShort = false;
    const node: MillraceNode = {
      id: config.nodeId,
      config,
      natsUrl: servers[0]!,
      logger,
      tasks: () => runners.flatMap((r) => r.tasks),
      runJob,
      checkpoint: (job) => {
        const coordinating = clusterCoordinator.job(job);
        if (!coordinating) return Promise.reject(millraceError(ErrorCodes.JOB_INVALID, `this node does not coordinate a job "${job}"`, { details: { job } }));
        return coordinating.checkpointNow();
      },
      stop: (stopOptions = {}) => {
        if (stopOptions.handOver === false) cutHandOverShort = true; // also ends a hand-over in progress
        return (stopped ??= (stopOptions.handOver === false ? Promise.resolve() : handOver())
          .catch((err) => logger.warn({ err }, 'handing the tasks over failed'))
          .then(closeAll)
          .then(() => logger.info('node stopped')));
      },
    };
    /** Marks this node leaving and waits until its tasks run elsewhere (or no other node could take them, or time is up). */
    const handOver = async () => {
      const others = () => [...members.members().values()].some((m) => m.info.id !== config.nodeId && !m.info.leaving && m.info.jobs.some((j) => runners.some((r) => r.plan.job === j)));
      if (!runners.some((r) => r.busy) || !others()) return;
      await membership.update({ leaving: true });
      const deadline = Date.now() + config.cluster.leaveTimeoutMs;
      logger.info({ timeoutMs: config.cluster.leaveTimeoutMs }, 'leaving: handing the tasks over');
      while (runners.some((r) => r.busy) && others() && Date.now() < deadline && !cutHandOverShort) await sleep(50);
      if (runners.some((r) => r.busy)) logger.warn({ tasks: node.tasks().length }, 'leaving with tasks not handed over: they restart elsewhere from the last checkpoint');
      else logger.info('every task handed over');
    };
    logger.info(
      { jobs: runners.map((r) => r.plan.job), tasks: node.tasks().length, nats: node.natsUrl, dataDir },
      'node started',
    );
    return node;
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function jetStreamManager(nc: NatsConnection): Promise<JetStreamManager> {
  try {
    return await nc.jetstreamManager();
  } catch (err) {
    throw translateNatsError(err, 'the NATS server has no JetStream (start nats-server with -js)');
  }
}

function checkUniqueNames(jobs: readonly JobDefinition[]): void {
  const seen = new Set<string>();
  for (const j of jobs) {
    if (seen.has(j.name)) throw millraceError(ErrorCodes.JOB_INVALID, `two jobs are named "${j.name}"`, { details: { job: j.name } });
    seen.add(j.name);
  }
}
