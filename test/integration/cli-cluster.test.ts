/**
 * Operating a cluster from the command line (issue 4): two real nodes run
 * the count job (test/fixtures/count-job.ts, 12 tasks); `millrace cluster
 * status`, `job list`, `job describe` and `job cancel` are run as the CLI
 * process and checked against what the nodes do: both listed, one of them
 * leading, the tasks shared 6/6, checkpoints committed, every task's lag
 * read from its consumer (0 once the events are processed); a cancel stops
 * the job on both nodes.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClusterStatus, JobStatus, JobSummary } from '../../cluster/admin/cluster-status.js';
import { createEventStream, generateEvents, publishEvents } from '../fixtures/count-data.js';
import { tempDir, waitFor } from '../helpers/nats.js';
import { nodeTestFixture } from '../helpers/node-cluster.js';
import { MILLRACE_BIN, spawnNode, waitForNodeStarted, type NodeProcess } from '../helpers/node-process.js';

const JOB_MODULE = fileURLToPath(new URL('../fixtures/count-job.js', import.meta.url));
const SUBJECTS = ['a', 'b', 'c', 'd'];
/** 4 source tasks and 8 keyed tasks. */
const TASKS = 12;
const NODES = ['n1', 'n2'];

const cluster = nodeTestFixture(test);

/** Runs the CLI to completion against the file's server: exit code, stdout, stderr. */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MILLRACE_BIN, ...args, '--nats', cluster.nats.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a `--json` command, which must succeed, and parses its output. */
async function cliJson<T>(...args: string[]): Promise<T> {
  const result = await cli(...args, '--json');
  if (result.code !== 0) throw new Error(`millrace ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

async function startNode(name: string, job: string, input: string, output: string): Promise<NodeProcess> {
  const dir = await tempDir('millrace-cli-cluster-');
  cluster.dirs.push(dir);
  return cluster.logs.track(
    spawnNode({
      args: ['node', 'start', '--nats', cluster.nats.url, '--data-dir', dir.path, '--node-id', name, '--job', JOB_MODULE],
      env: {
        COUNT_JOB: job,
        COUNT_INPUT_STREAM: input,
        COUNT_OUTPUT_STREAM: output,
        COUNT_INPUT_SUBJECTS: SUBJECTS.map((x) => `${input}.${x}`).join(','),
        MILLRACE_CHECKPOINT_INTERVAL_MS: '200',
        MILLRACE_CLUSTER_HEARTBEAT_MS: '250',
        MILLRACE_CLUSTER_MEMBER_TIMEOUT_MS: '3000',
      },
    }),
  );
}

/** Tasks per node in a job's status. */
function shares(job: JobStatus | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const task of job?.tasks ?? []) if (task.node) out.set(task.node, (out.get(task.node) ?? 0) + 1);
  return out;
}

test('cluster status and job list, describe and cancel show and steer two running nodes', async (t) => {
  const input = cluster.nats.unique('EV');
  await createEventStream(cluster.jsm, input);
  const job = cluster.nats.unique('ops');
  const output = cluster.nats.unique('COUNTS');

  // Before any node: nothing, and no bucket made by asking.
  const empty = await cliJson<ClusterStatus>('cluster', 'status');
  t.deepEqual([empty.nodes, empty.leader, empty.jobs], [[], null, []]);
  t.deepEqual(await cliJson<JobSummary[]>('job', 'list'), []);
  const buckets: string[] = [];
  for await (const name of cluster.jsm.streams.names()) if (name.startsWith('KV_')) buckets.push(name);
  t.deepEqual(buckets, [], 'a status query creates no bucket');

  const nodes = await Promise.all(NODES.map((name) => startNode(name, job, input, output)));
  await Promise.all(nodes.map((node) => waitForNodeStarted(node)));
  const { events } = generateEvents(4_000, 50, 4);
  await publishEvents(cluster.nc, events, SUBJECTS.map((x) => `${input}.${x}`));

  // Settled: both nodes hold 6 tasks, no handoff, a checkpoint committed, every task read through a consumer with nothing pending.
  let status: ClusterStatus | undefined;
  await waitFor(
    async () => {
      status = await cliJson<ClusterStatus>('cluster', 'status');
      const mine = status.jobs.find((j) => j.job === job);
      const loads = shares(mine);
      return (
        !!mine &&
        !mine.assignment?.handoff &&
        (mine.lastCheckpoint?.id ?? 0) > 0 &&
        NODES.every((n) => loads.get(n) === TASKS / NODES.length) &&
        mine.tasks.every((task) => task.lag === 0)
      );
    },
    { timeoutMs: 40_000, intervalMs: 300, message: `the job never settled on ${NODES.join(', ')}: ${JSON.stringify(status)}` },
  );
  const settled = status!;
  t.deepEqual(settled.nodes.map((n) => n.id), NODES);
  for (const node of settled.nodes) {
    t.is(node.tasks, TASKS / NODES.length, `tasks of ${node.id}`);
    t.deepEqual(node.jobs, [job]);
    t.false(node.leaving);
    t.true(node.heartbeatAgeMs < 3_000, `${node.id} heartbeat ${node.heartbeatAgeMs} ms ago`);
  }
  t.truthy(settled.leader);
  t.true(NODES.includes(settled.leader!.node), `leader ${settled.leader!.node}`);
  t.true(settled.leader!.epoch > 0);
  const described = settled.jobs.find((j) => j.job === job)!;
  t.is(described.status, 'running');
  t.is(described.tasks.length, TASKS);
  t.true(described.tasks.every((task) => NODES.includes(task.node ?? '') && task.consumer !== null), 'every task assigned and read through a consumer');
  t.true(described.tasks.every((task) => task.checkpointPositions !== null), 'every task has a position in the last checkpoint');

  const human = await cli('cluster', 'status');
  t.is(human.code, 0, human.stderr);
  t.log(human.stdout);
  for (const n of NODES) t.regex(human.stdout, new RegExp(`^  ${n} `, 'm'));
  t.regex(human.stdout, new RegExp(`^leader: (${NODES.join('|')}) \\(epoch \\d+`, 'm'));

  const listed = await cliJson<JobSummary[]>('job', 'list');
  t.like(listed.find((j) => j.job === job), { status: 'running', tasks: TASKS });

  const describe = await cli('job', 'describe', job);
  t.is(describe.code, 0, describe.stderr);
  for (const task of described.tasks) t.true(describe.stdout.includes(task.task), `describe mentions ${task.task}`);
  t.log(describe.stdout);

  const cancel = await cli('job', 'cancel', job);
  t.is(cancel.code, 0, cancel.stderr);
  await Promise.all(nodes.map((node) => node.waitForLog((e) => e.msg === 'job stopped on this node' && e.job === job, 20_000)));
  t.like((await cliJson<JobSummary[]>('job', 'list')).find((j) => j.job === job), { status: 'cancelled' });
  let after: ClusterStatus | undefined;
  await waitFor(
    async () => {
      after = await cliJson<ClusterStatus>('cluster', 'status');
      return after.nodes.every((n) => n.tasks === 0 && n.jobs.length === 0) && after.jobs.every((j) => j.tasks.every((task) => task.lag === null));
    },
    { timeoutMs: 10_000, intervalMs: 300, message: `the cancelled job still shows: ${JSON.stringify(after)}` },
  );

  const missing = await cli('job', 'cancel', 'nosuch');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /"nosuch"/);
  const missingDescribe = await cli('job', 'describe', 'nosuch');
  t.is(missingDescribe.code, 1);
  t.regex(missingDescribe.stderr, /"nosuch"/);
});
