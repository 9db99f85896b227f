/**
 * Scaling a running job by adding and removing real node processes
 * (issue 4, decision 005): the count job (test/fixtures/count-job.ts, 12
 * tasks) runs under load while nodes join, leave gracefully (SIGTERM) and
 * die (SIGKILL).
 *
 * - Joins and graceful leaves move only the tasks balance needs, each
 *   handed over at a checkpoint; the pause of every moved task (its last
 *   record on the old node to its first on the new one) is printed.
 * - After each change the assignment in KV is balanced over the live nodes.
 * - The outputs are exactly the reference's: every event counted once.
 * - No two nodes process the same task in the same generation at the same
 *   time (from each task ownership's first and last record).
 */
import test, { type ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ASSIGNMENT_BUCKET, type JobAssignment } from '../../cluster/assignment/assignment-store.js';
import { CountCollector, createEventStream, generateEvents, publishEvents, streamMessages, type CountEvent } from '../fixtures/count-data.js';
import { COUNT_PARTITIONS } from '../fixtures/count-shape.js';
import { tempDir, waitFor } from '../helpers/nats.js';
import { nodeTestFixture } from '../helpers/node-cluster.js';
import { spawnNode, waitForNodeStarted, type LogEntry, type NodeProcess } from '../helpers/node-process.js';

const JOB_MODULE = fileURLToPath(new URL('../fixtures/count-job.js', import.meta.url));
const SUBJECTS = ['a', 'b', 'c', 'd'];
/** 4 source tasks and 8 keyed tasks. */
const TASKS = 12;

const cluster = nodeTestFixture(test);

interface Scenario {
  readonly job: string;
  readonly input: string;
  readonly output: string;
}

async function scenario(): Promise<Scenario> {
  const input = cluster.nats.unique('EV');
  await createEventStream(cluster.jsm, input);
  return { job: cluster.nats.unique('scale'), input, output: cluster.nats.unique('COUNTS') };
}

async function startNode(s: Scenario, name: string, env: Record<string, string> = {}): Promise<NodeProcess> {
  const dir = await tempDir('millrace-scale-');
  cluster.dirs.push(dir);
  return cluster.logs.track(
    spawnNode({
      args: ['node', 'start', '--nats', cluster.nats.url, '--data-dir', dir.path, '--node-id', name, '--job', JOB_MODULE, '--log-level', 'debug'],
      env: {
        COUNT_JOB: s.job,
        COUNT_INPUT_STREAM: s.input,
        COUNT_OUTPUT_STREAM: s.output,
        COUNT_INPUT_SUBJECTS: SUBJECTS.map((x) => `${s.input}.${x}`).join(','),
        MILLRACE_CHECKPOINT_INTERVAL_MS: '200',
        MILLRACE_CLUSTER_HEARTBEAT_MS: '250',
        MILLRACE_CLUSTER_MEMBER_TIMEOUT_MS: '3000',
        ...env,
      },
    }),
  );
}

/** Publishes `events` in slices, one every `everyMs`: load that lasts while nodes come and go. */
async function publishPaced(s: Scenario, events: readonly CountEvent[], slice: number, everyMs: number): Promise<void> {
  for (let i = 0; i < events.length; i += slice) {
    const started = Date.now();
    await publishEvents(cluster.nc, events.slice(i, i + slice), SUBJECTS.map((x) => `${s.input}.${x}`));
    await sleep(Math.max(0, everyMs - (Date.now() - started)));
  }
}

async function assignment(job: string): Promise<JobAssignment | undefined> {
  const kv = await cluster.nc.jetstream().views.kv(DEFAULT_ASSIGNMENT_BUCKET);
  const entry = await kv.get(job);
  return entry?.operation === 'PUT' ? (entry.json() as JobAssignment) : undefined;
}

/** Tasks per node in a record. */
function shares(record: JobAssignment | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const node of Object.values(record?.tasks ?? {})) out.set(node, (out.get(node) ?? 0) + 1);
  return out;
}

/**
 * Waits until the job's assignment gives its tasks to exactly `nodes`, balanced
 * (loads differ by at most one), no handoff in progress, and every task runs
 * on its node; returns the record.
 */
async function settled(s: Scenario, nodes: ReadonlyMap<string, NodeProcess>, timeoutMs = 60_000): Promise<JobAssignment> {
  let last: JobAssignment | undefined;
  await waitFor(
    async () => {
      last = await assignment(s.job);
      const loads = shares(last);
      if (!last || last.handoff || loads.size !== nodes.size || ![...loads.keys()].every((n) => nodes.has(n))) return false;
      const counts = [...loads.values()];
      if (Math.max(...counts) - Math.min(...counts) > 1) return false;
      // The record's tasks run: each node logged starting them under this record.
      return [...nodes].every(([name, node]) => startedUnder(node, last!) || (loads.get(name) ?? 0) === 0);
    },
    { timeoutMs, intervalMs: 100, message: `the assignment never settled on ${[...nodes.keys()].join(', ')}: ${JSON.stringify(last && Object.fromEntries(shares(last)))}` },
  );
  return last!;
}

/** Whether `node` has started (or already runs) every task `record` gives it, as of that record. */
function startedUnder(node: NodeProcess, record: JobAssignment): boolean {
  return entries(node).some(
    (e) =>
      (e.msg === 'run started' || e.msg === 'moved tasks started') && Number(e.version) === record.version,
  ) || entries(node).some((e) => e.msg === 'run started' && Number(e.generation) === record.generation);
}

function entries(node: NodeProcess): LogEntry[] {
  return node.lines().filter((l): l is LogEntry => typeof l === 'object');
}

function isLeader(node: NodeProcess): boolean {
  const last = entries(node).findLast((e) => e.msg === 'this node now coordinates' || e.msg === 'coordinator lease status');
  return !node.exitStatus && last?.msg === 'this node now coordinates';
}

/** The pause of each moved task: its hand-over on the old node to its first record on the new one. */
function pauses(nodes: readonly NodeProcess[]): { task: string; ms: number }[] {
  const all = nodes.flatMap(entries);
  const handed = all.filter((e) => e.msg === 'task handed over');
  const resumed = all.filter((e) => e.msg === 'moved task processes records');
  return handed.flatMap((h) => {
    const next = resumed
      .filter((r) => r.task === h.task && Number(r.firstRecordAt) >= Number(h.handedOverAt))
      .sort((a, b) => Number(a.firstRecordAt) - Number(b.firstRecordAt))[0];
    return next ? [{ task: String(h.task), ms: Number(next.firstRecordAt) - Number(h.handedOverAt) }] : [];
  });
}

/**
 * Every ownership of a task (one node, one generation, one record) as the
 * span from its first to its last record; two spans of one task in one
 * generation on different nodes must not overlap.
 */
function overlaps(nodes: ReadonlyMap<string, NodeProcess>, killed: ReadonlyMap<string, number>): string[] {
  const spans: { node: string; task: string; generation: number; from: number; to: number }[] = [];
  for (const [name, node] of nodes) {
    for (const e of entries(node)) {
      if (e.msg !== 'task ended' || Number(e.processed) === 0) continue;
      spans.push({ node: name, task: String(e.task), generation: Number(e.generation), from: Number(e.firstRecordAt), to: Number(e.lastRecordAt) });
    }
    // A killed node logged no end: what it had started and not ended ran, at most, from its start until the kill.
    const at = killed.get(name);
    if (at === undefined) continue;
    const ended = new Set(entries(node).filter((e) => e.msg === 'task ended').map((e) => `${e.task}@${e.version}`));
    for (const e of entries(node)) {
      if (e.msg !== 'run started' && e.msg !== 'moved tasks started') continue;
      for (const task of e.ids as string[]) {
        if (!ended.has(`${task}@${e.version}`)) spans.push({ node: name, task, generation: Number(e.generation), from: Number(e.time), to: at });
      }
    }
  }
  const found: string[] = [];
  const byKey = new Map<string, typeof spans>();
  for (const s of spans) byKey.set(`${s.task}@${s.generation}`, [...(byKey.get(`${s.task}@${s.generation}`) ?? []), s]);
  for (const [key, list] of byKey) {
    list.sort((a, b) => a.from - b.from);
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.from <= list[i - 1]!.to) found.push(`${key}: ${list[i - 1]!.node} until ${list[i - 1]!.to}, ${list[i]!.node} from ${list[i]!.from}`);
    }
  }
  return found;
}

async function finish(t: ExecutionContext, s: Scenario, collector: CountCollector, events: number): Promise<void> {
  await collector.waitComplete(120_000);
  const stored = await streamMessages(cluster.jsm, s.output);
  await waitFor(() => collector.received >= stored, { timeoutMs: 20_000, message: 'collector behind the output stream' });
  const check = collector.check();
  t.deepEqual(check.wrongUsers.slice(0, 10), [], `users whose counts are not exactly 1..n (${check.wrongUsers.length})`);
  t.is(check.missingIds, 0, 'event ids with no output');
  t.is(check.duplicates, 0, 'outputs stored more than once');
  t.is(check.misrouted, 0);
  t.is(check.outputs, events, 'one output per event');
}

test.serial('1 node, then a 2nd and a 3rd join, one leaves gracefully and one is killed: balanced shares, handoff pauses printed, exactly once', async (t) => {
  t.timeout(240_000);
  const s = await scenario();
  const data = generateEvents(120_000, 3_000, 0x5ca1e);
  const nodes = new Map<string, NodeProcess>();
  const names = ['n1', 'n2', 'n3'].map((n) => cluster.nats.unique(n));

  nodes.set(names[0]!, await startNode(s, names[0]!));
  await waitForNodeStarted(nodes.get(names[0]!)!, 40_000);
  const collector = CountCollector.start(cluster.nc, s.output, COUNT_PARTITIONS, data.reference); // the node created the output stream
  t.teardown(() => collector.stop());
  const load = publishPaced(s, data.events, 2_000, 250);
  load.catch(() => undefined); // awaited below; a test failing first must not leave it unhandled
  await waitFor(async () => (await streamMessages(cluster.jsm, s.output)) >= 5_000, { timeoutMs: 60_000, message: 'no outputs from the first node' });

  const live = () => new Map([...nodes].filter(([, n]) => !n.exitStatus));
  for (const name of names.slice(1)) {
    nodes.set(name, await startNode(s, name));
    const record = await settled(s, live());
    t.log(`${name} joined: tasks per node ${JSON.stringify(Object.fromEntries(shares(record)))}`);
  }
  t.deepEqual([...shares(await assignment(s.job)).values()], [4, 4, 4], 'three nodes, four tasks each');

  // Stop a node that does not coordinate gracefully: its tasks are handed over before it exits.
  const [leaderName] = [...nodes].find(([, n]) => isLeader(n))!;
  const [quitName, quitter] = [...nodes].find(([name]) => name !== leaderName)!;
  quitter.kill('SIGTERM');
  t.deepEqual(await quitter.waitForExit(40_000), { code: 0, signal: null }, 'the leaving node exits by itself once its tasks are handed over');
  t.true(entries(quitter).some((e) => e.msg === 'every task handed over'), 'the leaving node handed every task over');
  let record = await settled(s, live());
  t.log(`${quitName} left gracefully: tasks per node ${JSON.stringify(Object.fromEntries(shares(record)))}`);

  // Kill the other follower: its tasks restart on the leader from the last checkpoint once its entry expires.
  const [victimName, victim] = [...live()].find(([name]) => name !== leaderName)!;
  const killedAt = Date.now();
  victim.kill('SIGKILL');
  await victim.waitForExit(10_000);
  record = await settled(s, live());
  t.log(`${victimName} killed: tasks per node ${JSON.stringify(Object.fromEntries(shares(record)))} after ${Date.now() - killedAt} ms`);
  t.is(shares(record).get(leaderName), TASKS);

  await load;
  await finish(t, s, collector, data.events.length);
  for (const n of live().values()) n.kill('SIGTERM');
  await Promise.all([...live().values()].map((n) => n.waitForExit(40_000)));

  const moved = pauses([...nodes.values()]);
  t.true(moved.length >= 8, `every handed-over task resumed elsewhere (${moved.length} pauses)`);
  const sorted = moved.map((p) => p.ms).sort((a, b) => a - b);
  t.log(`handoff pause per moved task (last record on the old node to first on the new), ms: ${moved.map((p) => `${p.task.split('/').slice(1).join('/')} ${p.ms}`).join(', ')}`);
  t.log(`pauses: ${moved.length} moved tasks, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`);
  t.deepEqual(overlaps(nodes, new Map([[victimName, killedAt]])), [], 'two nodes processing one task in one generation at once');
});

test.serial('rapid joins and leaves (5 nodes within seconds) converge to one stable assignment; no task is processed by two nodes at once in a generation', async (t) => {
  t.timeout(240_000);
  const s = await scenario();
  const data = generateEvents(80_000, 2_000, 0xbeef);
  const nodes = new Map<string, NodeProcess>();
  const names = ['r1', 'r2', 'r3', 'r4', 'r5'].map((n) => cluster.nats.unique(n));
  nodes.set(names[0]!, await startNode(s, names[0]!));
  await waitForNodeStarted(nodes.get(names[0]!)!, 40_000);
  const collector = CountCollector.start(cluster.nc, s.output, COUNT_PARTITIONS, data.reference);
  t.teardown(() => collector.stop());
  const load = publishPaced(s, data.events, 2_000, 250);
  load.catch(() => undefined); // awaited below; a test failing first must not leave it unhandled
  await waitFor(async () => (await streamMessages(cluster.jsm, s.output)) >= 2_000, { timeoutMs: 60_000, message: 'no outputs from the first node' });

  // Four joins, then two graceful leaves and a kill, 400 ms apart: changes arrive while handoffs are in progress.
  for (const name of names.slice(1)) {
    nodes.set(name, await startNode(s, name));
    await sleep(400);
  }
  const [, r2, r3, r4] = names.map((n) => nodes.get(n)!);
  r2!.kill('SIGTERM');
  await sleep(400);
  r3!.kill('SIGTERM');
  await sleep(400);
  const killedAt = Date.now();
  r4!.kill('SIGKILL');
  await Promise.all([r2!, r3!, r4!].map((n) => n.waitForExit(60_000)));

  const live = new Map([...nodes].filter(([, n]) => !n.exitStatus));
  t.deepEqual([...live.keys()].sort(), [names[0]!, names[4]!].sort());
  const record = await settled(s, live, 90_000);
  await sleep(3_000);
  const later = await assignment(s.job);
  t.is(later?.version, record.version, 'the assignment stays put once settled');
  t.deepEqual([...shares(later).values()].sort(), [6, 6]);
  t.log(`settled at generation ${record.generation}, version ${record.version}: ${JSON.stringify(Object.fromEntries(shares(record)))}`);

  await load;
  await finish(t, s, collector, data.events.length);
  for (const n of live.values()) n.kill('SIGTERM');
  await Promise.all([...live.values()].map((n) => n.waitForExit(40_000)));
  const exits = [r2!, r3!].map((n) => n.exitStatus);
  t.deepEqual(exits, [{ code: 0, signal: null }, { code: 0, signal: null }], 'the nodes stopped with SIGTERM exited by themselves');
  t.deepEqual(overlaps(nodes, new Map([[names[3]!, killedAt]])), [], 'two nodes processing one task in one generation at once');
  const handoffs = [...nodes.values()].flatMap(entries).filter((e) => e.msg === 'handoff done').length;
  const runs = [...nodes.values()].flatMap(entries).filter((e) => e.msg === 'new run of the job').length;
  t.log(`${handoffs} handoffs and ${runs} runs on the way; pauses of moved tasks: ${pauses([...nodes.values()]).map((p) => p.ms).join(', ')} ms`);
});

test.serial('with a standby replica per task, the tasks of a killed node restart on the survivor from its warm copy, not from the snapshot store', async (t) => {
  t.timeout(180_000);
  const s = await scenario();
  const data = generateEvents(60_000, 2_000, 0x57a4d);
  const env = { COUNT_STANDBY_REPLICAS: '1' };
  const [aName, bName] = ['s1', 's2'].map((n) => cluster.nats.unique(n)) as [string, string];
  // The node to be killed starts first and the survivor joins it: the survivor never ran the tasks the other keeps.
  const nodes = new Map<string, NodeProcess>([[bName, await startNode(s, bName, env)]]);
  await waitForNodeStarted(nodes.get(bName)!, 40_000);
  const collector = CountCollector.start(cluster.nc, s.output, COUNT_PARTITIONS, data.reference);
  t.teardown(() => collector.stop());
  const load = publishPaced(s, data.events, 2_000, 250);
  load.catch(() => undefined); // awaited below; a test failing first must not leave it unhandled
  nodes.set(aName, await startNode(s, aName, env));
  const record = await settled(s, nodes);
  t.deepEqual([...shares(record).values()], [6, 6]);
  // Every task has the other node as its standby, and the standby has brought its copy to a committed checkpoint.
  t.true(Object.entries(record.tasks).every(([task, owner]) => record.standbys?.[task]?.length === 1 && record.standbys[task]![0] !== owner));
  const standbyOfA = Object.keys(record.tasks).filter((task) => record.standbys?.[task]?.[0] === aName);
  const warmed = (task: string) => entries(nodes.get(aName)!).some((e) => e.why === 'standby' && e.task === task && e.msg === 'state of a task not running here brought to a committed checkpoint');
  await waitFor(() => standbyOfA.every(warmed), { timeoutMs: 30_000, message: 'the survivor never warmed its standby copies' });

  const b = nodes.get(bName)!;
  const killedAt = Date.now();
  b.kill('SIGKILL');
  await b.waitForExit(10_000);
  const after = await settled(s, new Map([[aName, nodes.get(aName)!]]));
  t.is(shares(after).get(aName), TASKS);
  const restart = entries(nodes.get(aName)!).findLast((e) => e.msg === 'run started' && Number(e.generation) === after.generation)!;
  const from = restart.restoredFrom as Record<string, number>;
  t.log(`SIGKILL of ${bName}: its tasks run on ${aName} after ${Number(restart.time) - killedAt} ms, restored from ${JSON.stringify(from)}`);
  t.is(from.snapshot, 0, 'no task downloaded its whole state: the dead node’s tasks had warm standby copies');
  t.is(from.empty, 0);

  await load;
  await finish(t, s, collector, data.events.length);
});
