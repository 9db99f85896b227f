/**
 * A millrace node: one process with a NATS connection, a LevelDB data dir and
 * the tasks of its jobs. `startNode()` is the in-code entry; the CLI's
 * `millrace node start` calls it.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { JetStreamManager, NatsConnection } from 'nats';
import pino, { type Logger } from 'pino';
import { resolveConfig, type NodeConfig, type NodeConfigInput } from '../config/index.js';
import { ErrorCodes, millraceError } from '../errors.js';
import type { JobDefinition } from '../runtime/api/index.js';
import type { StateBackend } from '../runtime/state/backend.js';
import { openLevelDbBackend } from '../runtime/state/leveldb-backend.js';
import type { DeadLetterHandler } from '../runtime/task/ports.js';
import type { Task } from '../runtime/task/task.js';
import { startEmbeddedNats } from './embedded-nats.js';
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
  /** Stops the tasks (what they did since the last checkpoint is replayed at the next start), closes everything. Idempotent. */
  stop(): Promise<void>;
}

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

    const transfer = new WorkerBlobTransfer({ servers, name: `${config.nats.name}:${config.nodeId}:snapshots`, bucket: DEFAULT_SNAPSHOT_BUCKET, logger });
    transfer.open();
    closers.push(() => transfer.close());
    const [manifests, runs, snapshots, savepoints] = await Promise.all([
      ManifestStore.open(controlJs),
      RunStore.open(controlJs),
      SnapshotStore.open(js, { transfer }),
      SavepointStore.open(controlJs),
    ]);
    const runners: JobRunner[] = [];
    const coordinator = new ClusterCoordinator({ nc: control, jsm: controlJsm, manifests, runs, snapshots, savepoints, logger });
    closers.push(() => coordinator.close());
    const lease = await LeaderLease.campaign(controlJs, {
      nodeId: config.nodeId,
      ttlMs: config.checkpoint.leaseTtlMs,
      onChange: (status) => {
        logger.info({ status }, status.role === 'leader' ? 'this node now coordinates' : 'coordinator lease status');
        coordinator.leadership(status);
        if (status.role !== 'stopped' && status.epoch !== undefined) for (const runner of runners) runner.sayHello();
      },
    });
    coordinator.leadership(lease.current);
    closers.push(() => lease.stop());
    closers.push(() => Promise.all(runners.map((r) => r.stop())));
    const runJob = async (definition: JobDefinition) => {
      checkUniqueNames([...runners.map((r) => r.definition), definition]);
      const runner = new JobRunner(definition, { nc, control, js, jsm, backend, manifests, snapshots, config, logger, deadLetter: options.deadLetter });
      runners.push(runner);
      await runner.start();
    };
    for (const definition of jobs) await runJob(definition);

    let stopped: Promise<void> | undefined;
    const node: MillraceNode = {
      id: config.nodeId,
      config,
      natsUrl: servers[0]!,
      logger,
      tasks: () => runners.flatMap((r) => r.tasks),
      runJob,
      checkpoint: (job) => {
        const coordinating = coordinator.job(job);
        if (!coordinating) return Promise.reject(millraceError(ErrorCodes.JOB_INVALID, `this node does not coordinate a job "${job}"`, { details: { job } }));
        return coordinating.checkpointNow();
      },
      stop: () => (stopped ??= closeAll().then(() => logger.info('node stopped'))),
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
