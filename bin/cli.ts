/**
 * The millrace command line.
 *
 *   millrace node start [--nats <url>] [--data-dir <dir>] [--node-id <id>] [--job <module>]...
 *                       [--config <file.json>] [--log-level <level>]
 *   millrace stream create <name> [--partitions <n>] --nats <url>
 *   millrace stream describe|delete <name> --nats <url>
 *   millrace savepoint create <job> [--name <name>] --nats <url>
 *   millrace savepoint list <job> --nats <url>
 *   millrace savepoint restore|delete <job> <name> --nats <url>
 *   millrace cluster status [--json] --nats <url>
 *   millrace job list [--json] --nats <url>
 *   millrace job describe <job> [--json] --nats <url>
 *   millrace job cancel <job> --nats <url>
 */
import { exitOnSignal, onSignal } from './early-signals.js';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.js';
import { cancelJob, clusterStatus, describeJob, listJobs } from '../cluster/admin/cluster-status.js';
import { formatClusterStatus, formatJob, formatJobList } from '../cluster/admin/format-status.js';
import { connect } from '../cluster/client.js';
import { startNode } from '../cluster/node.js';
import { savepointSubject, type SavepointReply, type SavepointRequest } from '../cluster/checkpoint/control.js';
import { ManifestStore } from '../cluster/checkpoint/manifest-store.js';
import { restoreSavepoint, SavepointStore } from '../cluster/checkpoint/savepoints.js';
import { connectNats } from '../cluster/transport/connection.js';
import { isMillraceError } from '../errors.js';

const USAGE = `usage:
  millrace node start [--nats <url>] [--data-dir <dir>] [--node-id <id>] [--job <module>]... [--config <file>] [--log-level <level>]
  millrace stream create <name> [--partitions <n>] [--nats <url>]
  millrace stream describe <name> [--nats <url>]
  millrace stream delete <name> [--nats <url>]
  millrace savepoint create <job> [--name <name>] [--nats <url>]   take a checkpoint now and keep it
  millrace savepoint list <job> [--nats <url>]
  millrace savepoint restore <job> <name> [--nats <url>]          the job's next run starts from it
  millrace savepoint delete <job> <name> [--nats <url>]
  millrace cluster status [--json] [--nats <url>]                  nodes, leader, and per job its assignment, last checkpoint, task lag
  millrace job list [--json] [--nats <url>]
  millrace job describe <job> [--json] [--nats <url>]
  millrace job cancel <job> [--nats <url>]                         every node stops the job's tasks

Every node option can also come from the config file (--config or MILLRACE_CONFIG)
and from MILLRACE_* environment variables; see docs/reference/configuration.md.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nats: { type: 'string' },
      'data-dir': { type: 'string' },
      'node-id': { type: 'string' },
      job: { type: 'string', multiple: true },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      partitions: { type: 'string' },
      name: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, command, name, extra] = positionals;
  if (group !== 'node' || command !== 'start') exitOnSignal(); // only a node stops gracefully
  if (values.help || !group) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (group === 'node' && command === 'start') return nodeStart(values);
  if (group === 'stream' && command && name) return stream(command, name, values);
  if (group === 'savepoint' && command && name) return savepoint(command, name, extra, values);
  if (group === 'cluster' && command === 'status') return cluster(values);
  if (group === 'job' && command) return jobCommand(command, name, values);
  process.stderr.write(`unknown command: ${positionals.join(' ')}\n${USAGE}\n`);
  return 2;
}

type Flags = Record<string, string | string[] | boolean | undefined>;

async function nodeStart(values: Flags): Promise<number> {
  const config = loadConfig({
    file: (values.config as string | undefined) ?? process.env.MILLRACE_CONFIG,
    env: process.env,
    flags: {
      nats: values.nats,
      dataDir: values['data-dir'],
      nodeId: values['node-id'],
      job: values.job,
      logLevel: values['log-level'],
    },
  });
  // Signals are handled from the start: one that comes while the node starts stops it once it is up.
  // The first hands the node's tasks over to the other nodes; a second stops at once.
  let node: Awaited<ReturnType<typeof startNode>> | undefined;
  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (!node) return; // acted on once started
    const handOver = signals === 1;
    node.logger.info({ signal, handOver }, handOver ? 'stopping' : 'stopping at once');
    (handOver ? node.stop() : node.stop({ handOver: false })).then(
      () => process.exit(0),
      (err) => {
        node!.logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  onSignal(shutdown);
  node = await startNode(config);
  if (signals > 0) {
    signals = 0;
    shutdown('a signal during start-up');
  }
  return new Promise<number>(() => undefined); // runs until a signal
}

async function stream(command: string, name: string, values: Flags): Promise<number> {
  const client = await connect({ servers: natsServers(values) });
  try {
    if (command === 'create') {
      const partitions = values.partitions === undefined ? undefined : Number(values.partitions);
      print(await client.streams.create(name, { partitions }));
    } else if (command === 'describe') {
      const d = await client.streams.describe(name);
      if (!d) {
        process.stderr.write(`stream "${name}" does not exist\n`);
        return 1;
      }
      print(d);
    } else if (command === 'delete') {
      print({ deleted: await client.streams.delete(name) });
    } else {
      process.stderr.write(`unknown stream command: ${command}\n${USAGE}\n`);
      return 2;
    }
    return 0;
  } finally {
    await client.close();
  }
}

const SAVEPOINT_TIMEOUT_MS = 120_000;

async function savepoint(command: string, job: string, name: string | undefined, values: Flags): Promise<number> {
  const nc = await connectNats({ servers: natsServers(values), name: 'millrace-cli' });
  try {
    const js = nc.jetstream();
    if (command === 'create') {
      const request: SavepointRequest = { name: (values.name as string | undefined) ?? name ?? `sp-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}` };
      let reply: SavepointReply;
      try {
        const msg = await nc.request(savepointSubject(job), new TextEncoder().encode(JSON.stringify(request)), { timeout: SAVEPOINT_TIMEOUT_MS });
        reply = JSON.parse(new TextDecoder().decode(msg.data)) as SavepointReply;
      } catch (err) {
        process.stderr.write(`millrace: no coordinator answered for job "${job}" (is a node running it?): ${(err as Error).message}\n`);
        return 1;
      }
      if (!reply.ok) {
        process.stderr.write(`millrace: ${reply.code}: ${reply.message}\n`);
        return 1;
      }
      print({ job, ...reply.savepoint });
      return 0;
    }
    const savepoints = await SavepointStore.open(js);
    if (command === 'list') {
      print((await savepoints.list(job)).map((s) => ({ name: s.name, checkpoint: s.manifest.checkpoint, createdAt: new Date(s.createdAt).toISOString() })));
      return 0;
    }
    if (!name) {
      process.stderr.write(`millrace savepoint ${command}: name the savepoint\n${USAGE}\n`);
      return 2;
    }
    if (command === 'restore') {
      const manifest = await restoreSavepoint(savepoints, await ManifestStore.open(js), job, name);
      print({ job, savepoint: name, checkpoint: manifest.checkpoint, from: manifest.restoredFrom });
      return 0;
    }
    if (command === 'delete') {
      print({ deleted: await savepoints.delete(job, name) });
      return 0;
    }
    process.stderr.write(`unknown savepoint command: ${command}\n${USAGE}\n`);
    return 2;
  } finally {
    await nc.close();
  }
}

async function cluster(values: Flags): Promise<number> {
  const nc = await connectNats({ servers: natsServers(values), name: 'millrace-cli' });
  try {
    const status = await clusterStatus(nc);
    if (values.json) print(status);
    else process.stdout.write(`${formatClusterStatus(status)}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

async function jobCommand(command: string, job: string | undefined, values: Flags): Promise<number> {
  if (command !== 'list' && command !== 'describe' && command !== 'cancel') {
    process.stderr.write(`unknown job command: ${command}\n${USAGE}\n`);
    return 2;
  }
  if (command !== 'list' && !job) {
    process.stderr.write(`millrace job ${command}: name the job\n${USAGE}\n`);
    return 2;
  }
  const nc = await connectNats({ servers: natsServers(values), name: 'millrace-cli' });
  try {
    if (command === 'list') {
      const jobs = await listJobs(nc);
      if (values.json) print(jobs);
      else process.stdout.write(`${formatJobList(jobs)}\n`);
      return 0;
    }
    if (command === 'describe') {
      const status = await describeJob(nc, job!);
      if (!status) return noSuchJob(job!);
      if (values.json) print(status);
      else process.stdout.write(`${formatJob(status)}\n`);
      return 0;
    }
    if (!(await cancelJob(nc, job!, `millrace-cli@${hostname()}`))) return noSuchJob(job!);
    if (values.json) print({ job, cancelled: true });
    else process.stdout.write(`job "${job}" cancelled: every node stops its tasks\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

function noSuchJob(job: string): number {
  process.stderr.write(`millrace: no job "${job}" is registered (millrace job list shows the jobs)\n`);
  return 1;
}

function natsServers(values: Flags): string[] {
  return ((values.nats as string | undefined) ?? process.env.MILLRACE_NATS ?? 'nats://127.0.0.1:4222').split(',');
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (isMillraceError(err)) process.stderr.write(`millrace: ${err.code}: ${err.message}\n`);
    else process.stderr.write(`millrace: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
