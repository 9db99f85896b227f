/**
 * A real `millrace node start` process runs test/fixtures/count-job.ts (count
 * events per user) against a real nats-server; the outputs are compared with
 * counts computed here. Exactly-once through kills and restarts: every
 * event's output exactly once, and a user's emitted counts exactly 1..n.
 * Checkpoints run every 100 ms here, so outputs (published when their
 * checkpoint commits) arrive steadily enough to kill a node mid-run.
 */
import test, { type ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';
import { tempDir, waitFor } from '../helpers/nats.js';
import { spawnNode, waitForNodeStarted, type LogEntry, type NodeProcess } from '../helpers/node-process.js';
import {
  CountCollector,
  createEventStream,
  generateEvents,
  publishAcked,
  publishEvents,
  streamMessages,
  type EventSet,
  type OutputCheck,
} from '../fixtures/count-data.js';
import { COUNT_PARTITIONS } from '../fixtures/count-shape.js';
import { nodeTestFixture } from '../helpers/node-cluster.js';

const JOB_MODULE = fileURLToPath(new URL('../fixtures/count-job.js', import.meta.url));

const EVENTS = 120_000;
const USERS = 5_000;
const SEED = 0x5eed_2024;
/** The input is published to 4 subjects and the job reads one source partition per subject. */
const SOURCE_SUBJECTS = ['a', 'b', 'c', 'd'];

let data: EventSet;
let inputStream: string;
const cluster = nodeTestFixture(test, async (fixture, t) => {
  data = generateEvents(EVENTS, USERS, SEED);
  inputStream = fixture.nats.unique('EV');
  await createEventStream(fixture.jsm, inputStream);
  const started = Date.now();
  await publishEvents(fixture.nc, data.events, SOURCE_SUBJECTS.map((s) => `${inputStream}.${s}`));
  const ms = Date.now() - started;
  t.log(`published ${EVENTS} events (${data.reference.size} users, seed ${SEED}) in ${ms} ms (${rate(EVENTS, ms)}/s)`);
});

interface CountRun {
  job: string;
  input: string;
  output: string;
  dataDir: string;
  nodeId: string;
  subjects: readonly string[];
}

async function newRun(input: string, subjects: readonly string[]): Promise<CountRun> {
  const dir = await tempDir('millrace-count-');
  cluster.dirs.push(dir);
  return { job: cluster.nats.unique('count'), input, output: cluster.nats.unique('COUNTS'), dataDir: dir.path, nodeId: cluster.nats.unique('node'), subjects };
}

function startCountNode(run: CountRun, logLevel = 'info'): NodeProcess {
  return cluster.logs.track(spawnNode({
    args: ['node', 'start', '--nats', cluster.nats.url, '--data-dir', run.dataDir, '--node-id', run.nodeId, '--job', JOB_MODULE, '--log-level', logLevel],
    env: {
      COUNT_JOB: run.job,
      COUNT_INPUT_STREAM: run.input,
      COUNT_OUTPUT_STREAM: run.output,
      COUNT_INPUT_SUBJECTS: run.subjects.join(','),
      MILLRACE_CHECKPOINT_INTERVAL_MS: '100',
    },
  }));
}

/** Log entries at error level or above (pino: 50). */
function errors(node: NodeProcess): LogEntry[] {
  return node.lines().filter((l): l is LogEntry => typeof l === 'object' && typeof l.level === 'number' && l.level >= 50);
}

/** task id → the input position it started from (the debug line "task started"). */
function startPositions(node: NodeProcess): Map<string, number> {
  const positions = new Map<string, number>();
  for (const l of node.lines()) {
    if (typeof l === 'object' && l.msg === 'task started') positions.set(String(l.task), Number(l.position));
  }
  return positions;
}

/** SIGTERM, then the exit status; the node must exit by itself within 20 s. */
async function stopGracefully(node: NodeProcess) {
  node.kill('SIGTERM');
  return node.waitForExit(20_000);
}

/** Waits until the collector has read everything the output stream holds. */
async function drain(collector: CountCollector, output: string): Promise<OutputCheck> {
  const stored = await streamMessages(cluster.jsm, output);
  await waitFor(() => collector.received >= stored, { timeoutMs: 20_000, message: `collector read fewer than ${stored} outputs` });
  return collector.check();
}

function assertNoLoss(t: ExecutionContext, check: OutputCheck): void {
  t.deepEqual(check.wrongUsers.slice(0, 10), [], `users whose counts are not exactly 1..n (${check.wrongUsers.length} in all)`);
  t.is(check.wrongUsers.length, 0);
  t.deepEqual(check.unknownUsers, [], 'outputs for users that no event had');
  t.is(check.missingIds, 0, 'event ids that no output carries');
  t.is(check.misrouted, 0, 'outputs whose Mr-Key or partition subject does not match the userId');
  t.is(check.duplicates, 0, 'outputs stored more than once');
}

function rate(n: number, ms: number): number {
  return Math.round((n / Math.max(ms, 1)) * 1000);
}

test.serial('keyed count over 120k JSON events, real node process', async (t) => {
  t.timeout(90_000);
  const run = await newRun(inputStream, SOURCE_SUBJECTS.map((s) => `${inputStream}.${s}`));
  const started = Date.now();
  const node = startCountNode(run);
  await waitForNodeStarted(node, 30_000);
  const collector = CountCollector.start(cluster.nc, run.output, COUNT_PARTITIONS, data.reference);
  t.teardown(() => collector.stop());

  await collector.waitComplete(70_000);
  const ms = Date.now() - started;
  t.log(`all ${EVENTS} counts emitted ${ms} ms after spawn (${rate(EVENTS, ms)} events/s end to end)`);

  const exit = await stopGracefully(node);
  t.deepEqual(exit, { code: 0, signal: null }, 'graceful exit on SIGTERM');
  const check = await drain(collector, run.output);
  assertNoLoss(t, check);
  t.log(`outputs ${check.outputs}, duplicates ${check.duplicates}, repeated (user, count) pairs ${check.repeatedCounts}`);
  t.deepEqual(errors(node), [], 'error-level log lines in a clean run');
});

test.serial('kill -9 mid-run twice, restart on the same data dir: nothing lost', async (t) => {
  t.timeout(115_000);
  const run = await newRun(inputStream, SOURCE_SUBJECTS.map((s) => `${inputStream}.${s}`));
  let collector: CountCollector | undefined;
  t.teardown(() => collector?.stop());
  const kills: { at: number; stored: number }[] = [];
  const lives: NodeProcess[] = [];

  // Life 1 is killed once the outputs pass 30% (sources read all input before the first checkpoint, so the
  // first commit releases most outputs at once: the kill lands while they are published). Life 2 is killed
  // 300 ms after it started, while it restores and republishes the committed checkpoint.
  for (const [life, killAt] of [0.3, 0].entries()) {
    const node = startCountNode(run, 'debug');
    lives.push(node);
    await waitForNodeStarted(node, 30_000);
    const startedAt = Date.now();
    collector ??= CountCollector.start(cluster.nc, run.output, COUNT_PARTITIONS, data.reference);
    let seen = 0;
    await waitFor(
      async () => {
        seen = await streamMessages(cluster.jsm, run.output);
        return (killAt === 0 ? Date.now() - startedAt >= 300 : seen >= killAt * EVENTS) || node.exitStatus !== undefined;
      },
      { timeoutMs: 60_000, intervalMs: 10, message: `life ${life + 1}: outputs never reached ${killAt * 100}%` },
    );
    node.kill('SIGKILL');
    const exit = await node.waitForExit(10_000);
    t.is(exit.signal, 'SIGKILL', `life ${life + 1} ended by the kill, not by itself`);
    const stored = await streamMessages(cluster.jsm, run.output);
    kills.push({ at: seen, stored });
    t.log(`life ${life + 1}: SIGKILL at ${seen} outputs (${((seen / EVENTS) * 100).toFixed(0)}%), ${stored} stored after exit`);
    if (life === 0) t.true(stored >= killAt * EVENTS && stored < EVENTS, `life 1 was killed mid-run (${stored} of ${EVENTS})`);
  }

  const last = startCountNode(run, 'debug');
  lives.push(last);
  await waitForNodeStarted(last, 30_000);
  // Each restart resumed every task from a committed position, never behind the previous life's.
  const positions = lives.map(startPositions);
  t.is(positions[0]!.size, 12, 'life 1 started 4 source and 8 keyed tasks');
  t.true([...positions[0]!.values()].every((p) => p === 0), 'life 1 started from scratch');
  for (let life = 1; life < lives.length; life++) {
    const resumed = [...positions[life]!];
    t.is(resumed.length, 12, `life ${life + 1} started 12 tasks`);
    const behind = resumed.filter(([task, p]) => !(p > 0 && p >= (positions[life - 1]!.get(task) ?? 0)));
    t.deepEqual(behind, [], `life ${life + 1}: tasks that did not resume from a committed checkpoint at or after the previous life's`);
  }
  t.log(`life 3 resumed from ${JSON.stringify(Object.fromEntries(positions[2]!))}`);
  const restart = last.lines().find((l): l is LogEntry => typeof l === 'object' && l.msg === 'new run of the job');
  t.regex(String(restart?.why), /^(leader epoch \d+|nodes changed)$/, 'the restarted node ran the job as soon as its membership entry was read, not after a member timeout');
  await collector!.waitComplete(60_000);
  const exit = await stopGracefully(last);
  t.deepEqual(exit, { code: 0, signal: null }, 'the restarted node finishes and exits 0 on SIGTERM');

  const check = await drain(collector!, run.output);
  assertNoLoss(t, check);
  t.log(`kills at ${kills.map((k) => k.at).join(', ')} outputs; outputs ${check.outputs}, duplicates ${check.duplicates}, repeated (user, count) pairs ${check.repeatedCounts}`);
});

test.serial('SIGTERM mid-run exits 0; a restart resumes from the last checkpoint, exactly once', async (t) => {
  t.timeout(90_000);
  const run = await newRun(inputStream, SOURCE_SUBJECTS.map((s) => `${inputStream}.${s}`));
  const first = startCountNode(run, 'debug');
  await waitForNodeStarted(first, 30_000);
  const collector = CountCollector.start(cluster.nc, run.output, COUNT_PARTITIONS, data.reference);
  t.teardown(() => collector.stop());
  await waitFor(async () => (await streamMessages(cluster.jsm, run.output)) >= 0.4 * EVENTS, {
    timeoutMs: 60_000,
    intervalMs: 10,
    message: 'outputs never reached 40%',
  });
  const stopAt = Date.now();
  const storedAtSignal = await streamMessages(cluster.jsm, run.output);
  first.kill('SIGTERM');
  const exit = await first.waitForExit(20_000);
  t.deepEqual(exit, { code: 0, signal: null }, 'graceful exit on SIGTERM while busy');
  const stored = await streamMessages(cluster.jsm, run.output);
  t.log(`stopped in ${Date.now() - stopAt} ms: ${storedAtSignal} outputs stored at the signal, ${stored} after exit`);
  t.true(storedAtSignal < EVENTS, `signalled before the job finished (${storedAtSignal} of ${EVENTS})`);
  // The next life resumes from the last committed checkpoint: at or before where each task stopped, never from scratch.
  const stopped = new Map<string, number>();
  for (const l of first.lines()) if (typeof l === 'object' && l.msg === 'task stopped') stopped.set(String(l.task), Number(l.position));
  t.is(stopped.size, 12, 'every task logged its stop');

  const second = startCountNode(run, 'debug');
  await waitForNodeStarted(second, 30_000);
  const resumed = [...startPositions(second)];
  t.is(resumed.length, 12, 'the second life started 12 tasks');
  const wrong = resumed.filter(([task, p]) => !(p > 0 && p <= (stopped.get(task) ?? 0)));
  t.deepEqual(wrong, [], 'tasks that did not resume from a checkpoint at or before where they stopped');
  await collector.waitComplete(60_000);
  t.deepEqual(await stopGracefully(second), { code: 0, signal: null });
  const check = await drain(collector, run.output);
  assertNoLoss(t, check);
  t.log(`outputs ${check.outputs}, duplicates ${check.duplicates}`);
});

test.serial('bad records are logged with their stream sequence and skipped', async (t) => {
  t.timeout(60_000);
  const input = cluster.nats.unique('BAD');
  await createEventStream(cluster.jsm, input);
  const run = await newRun(input, []); // one source partition over the whole stream
  const { events, reference } = generateEvents(4_000, 200, SEED + 1);
  const encoder = new TextEncoder();
  const json = (v: unknown) => encoder.encode(JSON.stringify(v));
  const subject = `${input}.x`;

  const before = events.slice(0, 2_000).map(json);
  const bad = [
    { body: encoder.encode('{"id":"bad-json","userId":'), code: 'MR_RECORD_DECODE' },
    { body: Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d), code: 'MR_RECORD_DECODE' }, // not UTF-8
    { body: json({ id: 'no-user', amount: 1 }), code: 'MR_USER_FUNCTION' },
    { body: json({ id: 'number-user', userId: 42, amount: 1 }), code: 'MR_USER_FUNCTION' },
  ];
  const middle = events.slice(2_000, 3_000).map(json);
  const after = events.slice(3_000).map(json);
  // valid, bad ones interleaved with valid ones, valid
  const first = [...before, bad[0]!.body, bad[1]!.body, ...middle.slice(0, 500), bad[2]!.body, ...middle.slice(500), bad[3]!.body];
  const seqs = await publishAcked(cluster.nc, first, () => subject);
  const badSeqs = [before.length, before.length + 1, before.length + 2 + 500, first.length - 1].map((i) => seqs[i]!);
  const expected = bad.map((b, i) => ({ seq: badSeqs[i]!, code: b.code, stream: input })).sort((a, b) => a.seq - b.seq);

  const node = startCountNode(run);
  await waitForNodeStarted(node, 30_000);
  const collector = CountCollector.start(cluster.nc, run.output, COUNT_PARTITIONS, reference);
  t.teardown(() => collector.stop());
  // The rest arrives once the node has skipped every bad record: it keeps going.
  await node.waitForLog((e) => e.msg === 'record skipped' && e.seq === badSeqs[3], 30_000);
  await publishAcked(cluster.nc, after, () => subject);
  await collector.waitComplete(30_000);

  const skipped = node
    .lines()
    .filter((l): l is LogEntry => typeof l === 'object' && l.msg === 'record skipped')
    .map((e) => ({ seq: e.seq, code: (e.err as { code?: unknown } | undefined)?.code, stream: e.stream }))
    .sort((a, b) => Number(a.seq) - Number(b.seq));
  t.deepEqual(skipped, expected, 'one "record skipped" line per bad record, with its stream seq and error code');

  const exit = await stopGracefully(node);
  t.deepEqual(exit, { code: 0, signal: null });
  const check = await drain(collector, run.output);
  assertNoLoss(t, check);
  t.deepEqual(errors(node), [], 'a bad record is not an error of the node');
  t.log(`bad records at seqs ${badSeqs.join(', ')}; outputs ${check.outputs}, duplicates ${check.duplicates}`);
});
