/**
 * Three real node processes run the count job (test/fixtures/count-job.ts)
 * and share its tasks; one of them holds the leader lease and coordinates.
 * The coordinator is frozen past its lease (SIGSTOP), then resumed as a
 * zombie; later the new coordinator is killed outright (SIGKILL). Each time
 * another node must take the lease within the lease's TTL, the nodes must
 * refuse commands of the older leader, and the job must end exactly once
 * (every event's count emitted once, each user's counts exactly 1..n).
 */
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { tempDir, waitFor } from '../helpers/nats.js';
import { spawnNode, waitForNodeStarted, type LogEntry, type NodeProcess } from '../helpers/node-process.js';
import { CountCollector, createEventStream, generateEvents, publishEvents, streamMessages, type EventSet } from '../fixtures/count-data.js';
import { COUNT_PARTITIONS } from '../fixtures/count-shape.js';
import { controlSubject } from '../../cluster/checkpoint/control.js';
import { nodeTestFixture } from '../helpers/node-cluster.js';

const JOB_MODULE = fileURLToPath(new URL('../fixtures/count-job.js', import.meta.url));
const EVENTS = 150_000;
const USERS = 3_000;
const SEED = 0xfa11_0e7;
const SUBJECTS = ['a', 'b', 'c', 'd'];
const LEASE_TTL_MS = 3_000;
/**
 * The lease expires at most one TTL after the frozen or killed leader's last
 * renewal, and a follower tries to win it at that moment (not a polling
 * round later). The slack covers the follower's timer, the KV round trip
 * and the log line reaching the test on a loaded 2-vCPU machine; a
 * polling-based takeover (up to TTL + TTL/4 = 750 ms late) often exceeds it.
 */
const TAKEOVER_SLACK_MS = 600;

let data: EventSet;
const cluster = nodeTestFixture(test);

test.before(async () => {
  data = generateEvents(EVENTS, USERS, SEED);
});

function entries(node: NodeProcess): LogEntry[] {
  return node.lines().filter((l): l is LogEntry => typeof l === 'object');
}

/** The epoch of the node's latest "this node now coordinates" line, if any. */
function leadEpoch(node: NodeProcess): number | undefined {
  const led = entries(node).filter((e) => e.msg === 'this node now coordinates');
  const status = led.at(-1)?.status as { epoch?: number } | undefined;
  return status?.epoch;
}

/** Refusals logged by `node` of commands from leader epoch `epoch`. */
function refusals(node: NodeProcess, epoch: number): LogEntry[] {
  return entries(node).filter((e) => e.msg === 'refused a command from an older leader' && e.epoch === epoch);
}

test.serial('the coordinator frozen past its lease, then killed: another takes over within the TTL, old commands are refused, exactly once', async (t) => {
  t.timeout(170_000);
  const input = cluster.nats.unique('EV');
  await createEventStream(cluster.jsm, input);
  await publishEvents(cluster.nc, data.events, SUBJECTS.map((s) => `${input}.${s}`));
  const job = cluster.nats.unique('failover');
  const output = cluster.nats.unique('COUNTS');
  const names = ['n1', 'n2', 'n3'].map((n) => cluster.nats.unique(n));
  const nodes = new Map<string, NodeProcess>();
  for (const name of names) {
    const dir = await tempDir('millrace-failover-');
    cluster.dirs.push(dir);
    nodes.set(
      name,
      cluster.logs.track(
        spawnNode({
          args: ['node', 'start', '--nats', cluster.nats.url, '--data-dir', dir.path, '--node-id', name, '--job', JOB_MODULE, '--log-level', 'debug'],
          env: {
            COUNT_JOB: job,
            COUNT_INPUT_STREAM: input,
            COUNT_OUTPUT_STREAM: output,
            COUNT_INPUT_SUBJECTS: SUBJECTS.map((s) => `${input}.${s}`).join(','),
            MILLRACE_CHECKPOINT_INTERVAL_MS: '100',
            MILLRACE_CHECKPOINT_LEASE_TTL_MS: String(LEASE_TTL_MS),
            MILLRACE_CLUSTER_HEARTBEAT_MS: '250',
            MILLRACE_CLUSTER_MEMBER_TIMEOUT_MS: '4000',
          },
        }),
      ),
    );
  }
  await Promise.all([...nodes.values()].map((n) => waitForNodeStarted(n, 40_000)));
  const collector = CountCollector.start(cluster.nc, output, COUNT_PARTITIONS, data.reference);
  t.teardown(() => collector.stop());

  // The tasks are shared: every node runs some, none runs them all.
  const shares = [...nodes.values()].map((n) => Number(entries(n).findLast((e) => e.msg === 'run started')?.tasks ?? 0));
  t.log(`tasks per node in the first run: ${shares.join(', ')}`);

  const leaderOf = () => [...nodes.entries()].find(([, n]) => !n.exitStatus && leadEpoch(n) !== undefined && isLatestLeader(n));
  const isLatestLeader = (n: NodeProcess) => {
    const last = entries(n).findLast((e) => e.msg === 'this node now coordinates' || e.msg === 'coordinator lease status');
    return last?.msg === 'this node now coordinates';
  };
  const atLeast = async (fraction: number) =>
    waitFor(async () => (await streamMessages(cluster.jsm, output)) >= fraction * EVENTS, { timeoutMs: 60_000, intervalMs: 20, message: `outputs never reached ${fraction * 100}%` });

  // 1. Freeze the coordinator past its lease: another node takes over within the TTL.
  await atLeast(0.15);
  await waitFor(() => leaderOf() !== undefined, { timeoutMs: 10_000, message: 'no node coordinates' });
  const [frozenName, frozen] = leaderOf()!;
  const oldEpoch = leadEpoch(frozen)!;
  const frozenAt = Date.now();
  frozen.kill('SIGSTOP');
  const others = [...nodes].filter(([name]) => name !== frozenName);
  await waitFor(() => others.some(([, n]) => (leadEpoch(n) ?? 0) > oldEpoch), { timeoutMs: 3 * LEASE_TTL_MS, intervalMs: 10, message: 'no node took over the lease' });
  const takeoverMs = Date.now() - frozenAt;
  const [, successor] = others.find(([, n]) => (leadEpoch(n) ?? 0) > oldEpoch)!;
  const newEpoch = leadEpoch(successor)!;
  t.log(`SIGSTOP of the coordinator (epoch ${oldEpoch}): epoch ${newEpoch} took over after ${takeoverMs} ms (lease TTL ${LEASE_TTL_MS} ms)`);
  t.true(takeoverMs <= LEASE_TTL_MS + TAKEOVER_SLACK_MS, `takeover within the lease TTL (+${TAKEOVER_SLACK_MS} ms of scheduling and log latency): ${takeoverMs} ms`);

  // 2. The new leader's run reaches the live nodes; then the old leader's commands are refused.
  await waitFor(() => others.every(([, n]) => entries(n).some((e) => e.msg === 'run started' && Number(e.leaderEpoch) >= newEpoch)), {
    timeoutMs: 20_000,
    message: 'the live nodes never started the new leader’s run',
  });
  // A command from the old epoch, as the zombie would send it: a trigger of a checkpoint far ahead.
  const stale = { leaderEpoch: oldEpoch, generation: 1_000_000, checkpoint: 1_000_000 };
  cluster.nc.publish(controlSubject(job, 'trigger'), new TextEncoder().encode(JSON.stringify(stale)));
  await waitFor(() => others.every(([, n]) => refusals(n, oldEpoch).length > 0), { timeoutMs: 10_000, message: 'a stale command was not refused' });
  t.pass('every live node refused the stale leader’s command');

  // 3. Resume the zombie: it steps down without committing anything, and rejoins as a worker.
  frozen.kill('SIGCONT');
  await frozen.waitForLog((e) => e.msg === 'coordinator lease status' && (e.status as { role?: string }).role === 'follower', 20_000);
  t.log(`the resumed old coordinator stepped down; refusals of epoch ${oldEpoch}: ${others.map(([, n]) => refusals(n, oldEpoch).length).join(', ')}`);

  // 4. Kill the new coordinator outright.
  await atLeast(0.5);
  const killedAt = Date.now();
  successor.kill('SIGKILL');
  const survivors = [...nodes.values()].filter((n) => n !== successor);
  await waitFor(() => survivors.some((n) => (leadEpoch(n) ?? 0) > newEpoch), { timeoutMs: 3 * LEASE_TTL_MS, intervalMs: 10, message: 'no node took over after the kill' });
  const secondTakeoverMs = Date.now() - killedAt;
  t.log(`SIGKILL of the coordinator (epoch ${newEpoch}): a node took over after ${secondTakeoverMs} ms`);
  t.true(secondTakeoverMs <= LEASE_TTL_MS + TAKEOVER_SLACK_MS, `takeover within the lease TTL (+${TAKEOVER_SLACK_MS} ms of scheduling and log latency): ${secondTakeoverMs} ms`);

  // 5. The job finishes exactly once on the two survivors.
  await collector.waitComplete(90_000);
  const stored = await streamMessages(cluster.jsm, output);
  await waitFor(() => collector.received >= stored, { timeoutMs: 20_000, message: 'collector behind the output stream' });
  const check = collector.check();
  t.deepEqual(check.wrongUsers.slice(0, 10), [], `users whose counts are not exactly 1..n (${check.wrongUsers.length})`);
  t.is(check.missingIds, 0, 'event ids with no output');
  t.is(check.duplicates, 0, 'outputs stored more than once');
  t.deepEqual(check.unknownUsers, []);
  t.is(check.misrouted, 0);
  t.log(`outputs ${check.outputs} for ${EVENTS} events; duplicates ${check.duplicates}`);
});
