/**
 * Savepoints end to end with real processes: a node runs the count job over
 * the first half of the events; `millrace savepoint create` keeps a
 * checkpoint; the job goes on over the second half and is stopped;
 * `millrace savepoint restore` rewinds it; a node with a compatibly changed
 * job (test/fixtures/count-job-v2.ts) starts from the savepoint. The second
 * half is then counted again by version 2, continuing each user's count
 * from the savepoint's state — not from scratch and not from the later
 * checkpoint — and nothing staged before the savepoint is published again.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeRecordValue } from '../../index.js';
import { tempDir, waitFor } from '../helpers/nats.js';
import { MILLRACE_BIN, spawnNode, waitForNodeStarted, type NodeProcess } from '../helpers/node-process.js';
import { createEventStream, generateEvents, publishEvents, streamMessages, type CountEvent } from '../fixtures/count-data.js';
import type { VersionedCount } from '../fixtures/count-job-v2.js';
import { nodeTestFixture } from '../helpers/node-cluster.js';

const V1 = fileURLToPath(new URL('../fixtures/count-job.js', import.meta.url));
const V2 = fileURLToPath(new URL('../fixtures/count-job-v2.js', import.meta.url));
const HALF = 15_000;
const SUBJECTS = ['a', 'b'];

const cluster = nodeTestFixture(test);

test.before(async () => {
});
/** Runs the CLI to completion: exit code, stdout, stderr. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MILLRACE_BIN, ...args, '--nats', cluster.nats.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every record of `stream`, decoded, in stream order. */
async function readAll<T>(stream: string): Promise<T[]> {
  const consumer = await cluster.nc.jetstream().consumers.get(stream);
  const total = await streamMessages(cluster.jsm, stream);
  const out: T[] = [];
  while (out.length < total) {
    const batch = await consumer.fetch({ max_messages: 5_000, expires: 2_000 });
    for await (const m of batch) out.push(decodeRecordValue<T>(m.data));
  }
  return out;
}

function countBy(events: readonly CountEvent[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) counts.set(e.userId, (counts.get(e.userId) ?? 0) + 1);
  return counts;
}

test('a job restarted from a savepoint after a compatible code change continues from the savepoint’s state', async (t) => {
  t.timeout(150_000);
  const { events } = generateEvents(2 * HALF, 800, 0x5a7e);
  const [first, second] = [events.slice(0, HALF), events.slice(HALF)];
  const input = cluster.nats.unique('EV');
  const output = cluster.nats.unique('COUNTS');
  const job = cluster.nats.unique('sp');
  await createEventStream(cluster.jsm, input);
  const dir = await tempDir('millrace-savepoint-');
  cluster.dirs.push(dir);
  const start = (module: string): NodeProcess =>
    cluster.logs.track(
      spawnNode({
        args: ['node', 'start', '--nats', cluster.nats.url, '--data-dir', dir.path, '--node-id', 'sp-node', '--job', module],
        env: {
          COUNT_JOB: job,
          COUNT_INPUT_STREAM: input,
          COUNT_OUTPUT_STREAM: output,
          COUNT_INPUT_SUBJECTS: SUBJECTS.map((s) => `${input}.${s}`).join(','),
          MILLRACE_CHECKPOINT_INTERVAL_MS: '200',
        },
      }),
    );
  const outputsReach = (n: number) =>
    waitFor(async () => (await streamMessages(cluster.jsm, output).catch(() => 0)) >= n, { timeoutMs: 60_000, intervalMs: 100, message: `outputs never reached ${n}` });

  // Version 1 counts the first half; the savepoint is taken after it.
  await publishEvents(cluster.nc, first, SUBJECTS.map((s) => `${input}.${s}`));
  const v1 = start(V1);
  await waitForNodeStarted(v1);
  await outputsReach(HALF);
  const created = await cli(['savepoint', 'create', job, '--name', 'before-second-half']);
  t.is(created.code, 0, created.stderr);
  const savepoint = JSON.parse(created.stdout) as { name: string; checkpoint: number; tasks: number };
  t.like(savepoint, { name: 'before-second-half', tasks: 10 });
  const taken = await cli(['savepoint', 'create', job, '--name', 'before-second-half']);
  t.is(taken.code, 1, 'a name in use is refused');
  t.regex(taken.stderr, /MR_SAVEPOINT_INVALID.*already has a savepoint "before-second-half"/);

  // Version 1 goes on over the second half, then stops.
  await publishEvents(cluster.nc, second, SUBJECTS.map((s) => `${input}.${s}`));
  await outputsReach(2 * HALF);
  v1.kill('SIGTERM');
  t.deepEqual(await v1.waitForExit(20_000), { code: 0, signal: null });

  // Rewind to the savepoint; version 2 of the job starts from it.
  const restored = await cli(['savepoint', 'restore', job, 'before-second-half']);
  t.is(restored.code, 0, restored.stderr);
  t.like(JSON.parse(restored.stdout), { savepoint: 'before-second-half', from: { savepoint: 'before-second-half', checkpoint: savepoint.checkpoint } });
  const listed = await cli(['savepoint', 'list', job]);
  t.deepEqual((JSON.parse(listed.stdout) as { name: string }[]).map((s) => s.name), ['before-second-half']);
  const v2 = start(V2);
  await waitForNodeStarted(v2);
  await outputsReach(3 * HALF);
  await new Promise((r) => setTimeout(r, 1_500)); // anything published twice would arrive by now
  v2.kill('SIGTERM');
  t.deepEqual(await v2.waitForExit(20_000), { code: 0, signal: null });

  const all = await readAll<VersionedCount | (VersionedCount & { version: undefined })>(output);
  t.is(all.length, 3 * HALF, 'v1 outputs for both halves, v2 outputs for the second half, nothing else');
  const upgraded = all.filter((o) => o.version === 2);
  t.deepEqual(upgraded.map((o) => o.id).sort(), second.map((e) => e.id).sort(), 'version 2 recounted exactly the events after the savepoint');
  // Each user's version-2 counts continue from its count at the savepoint: first-half count + 1 .. + second-half count.
  const before = countBy(first);
  const after = countBy(second);
  const wrong: string[] = [];
  for (const [user, n] of after) {
    const got = upgraded.filter((o) => o.userId === user).map((o) => o.count).sort((a, b) => a - b);
    const base = before.get(user) ?? 0;
    const want = Array.from({ length: n }, (_, i) => base + i + 1);
    if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${user}: got ${got.slice(0, 4)}…, want ${want.slice(0, 4)}…`);
  }
  t.deepEqual(wrong.slice(0, 5), [], `${wrong.length} users whose version-2 counts do not continue from the savepoint`);
  // The new state field starts empty at the upgrade: its sum covers second-half amounts only.
  const lastPerUser = new Map<string, VersionedCount>();
  for (const o of upgraded) if ((lastPerUser.get(o.userId)?.count ?? 0) < o.count) lastPerUser.set(o.userId, o);
  const amounts = new Map<string, number>();
  for (const e of second) amounts.set(e.userId, (amounts.get(e.userId) ?? 0) + e.amount);
  t.true([...lastPerUser].every(([user, o]) => Math.abs(o.amountSinceUpgrade - amounts.get(user)!) < 1e-6), 'new state starts empty');
});
