/**
 * The Task under the checkpoint protocol (decision 003, runtime/task/task.ts),
 * run on the real Task with in-memory ports:
 *
 *   - a source task seals checkpoint n when triggered, and publishes barrier
 *     n on every partition of its internal output after everything before it;
 *   - a task behind an internal stream aligns the barriers of its upstream
 *     tasks, seals at the last one, and ignores or refuses records of other
 *     generations;
 *   - sink outputs wait for their checkpoint's commit (or go at once in
 *     `immediate` mode);
 *   - stop() drops what no checkpoint sealed.
 *
 * Two jobs: `clicks` (source → per-user → keyBy(page) → per-page → sink),
 * whose stage s0 writes the internal stream `clicks__s1` and whose stage s1
 * reads it; and `orders` (source → counter → sink), one stage that is both a
 * source task and a sink task.
 */
import test, { type ExecutionContext } from 'ava';
import pino from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes } from '../../errors.js';
import { job, keyed, sink, source, value } from '../../index.js';
import { compileJob, type StagePlan } from '../../runtime/plan/compile.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { keyspace, positionKey, stagedKey, stagedPrefix, undoKey } from '../../runtime/state/keys.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import { readTaskPosition } from '../../runtime/state/task-position.js';
import type { InputFactory, InputMessage, TaskOutput } from '../../runtime/task/ports.js';
import { Task, type SealedCheckpoint, type TaskCheckpointing } from '../../runtime/task/task.js';
import { StagedOutputs } from '../../runtime/task/staged-outputs.js';
import { decodeMsgpack, encodeMsgpack } from '../../runtime/wire/codec.js';
import { manualClock, memoryInput, memoryOutput, type MemoryInput, type MemoryOutput } from '../../testing.js';

// ---------------------------------------------------------------------------
// Jobs

interface Click {
  page: string;
  /** Set a processing-time timer this far ahead of now. */
  timerIn?: number;
}

interface View {
  user: string;
  page: string;
  n: number;
}

/** Stage s0 of `clicks`: counts clicks per user; a timer emits a view of page 'reminder'. */
const PerUser = keyed({
  name: 'per-user',
  state: { n: value({ default: 0 }) },
  onRecord(click: Click, ctx): View {
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    if (click.timerIn !== undefined) ctx.timers.processingTime(ctx.timers.now() + click.timerIn);
    return { user: ctx.key, page: click.page, n };
  },
  onTimer(_ts, ctx): View {
    return { user: ctx.key, page: 'reminder', n: 0 };
  },
});

/** Stage s1 of `clicks`: counts views per page. */
const PerPage = keyed({
  name: 'per-page',
  state: { n: value({ default: 0 }) },
  onRecord(view: View, ctx) {
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    return { page: ctx.key, n, user: view.user };
  },
});

const CLICKS = 'clicks';
const clicks = compileJob(
  job(CLICKS)
    .from(source.stream<Click>('clicks-in'))
    .process(PerUser)
    .keyBy((v) => v.page, { partitions: 2 })
    .process(PerPage)
    .to(sink.stream('clicks-out')),
);
const S0 = clicks.stages[0]!;
const S1 = clicks.stages[1]!;
/** The upstream tasks of S1 in these tests: two partitions of S0. */
const A = `${CLICKS}/s0/0`;
const B = `${CLICKS}/s0/1`;
/** The S1 task the tests run. */
const S1_TASK = `${CLICKS}/s1/0`;

const Counter = keyed({
  name: 'counter',
  state: { n: value({ default: 0 }) },
  onRecord(order: { emit?: number }, ctx) {
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    return Array.from({ length: order.emit ?? 1 }, (_, i) => ({ key: ctx.key, n, i }));
  },
});

const ORDERS = 'orders';
const ORDERS_S0 = compileJob(job(ORDERS).from(source.stream<{ emit?: number }>('orders-in')).process(Counter).to(sink.stream('orders-out'))).stages[0]!;
const ORDERS_TASK = `${ORDERS}/s0/0`;

// ---------------------------------------------------------------------------
// Fixture

interface StartOptions {
  job: string;
  stage: StagePlan;
  generation?: number;
  upstream?: readonly string[];
  sinkMode?: TaskCheckpointing['sinkMode'];
  maxAlignmentRecords?: number;
  maxUncommittedRecords?: number;
  outputPartitions?: number;
  backend?: StateBackend;
  input?: MemoryInput;
  openInput?: InputFactory;
  output?: MemoryOutput;
  /** Replaces `output` as the task's port (the fixture's `output` is then unused). */
  taskOutput?: TaskOutput;
  now?: () => number;
  /** Runs inside `checkpointing.sealed`, after the checkpoint is recorded. */
  onSealed?: (sealed: SealedCheckpoint) => void | Promise<void>;
}

interface Fixture {
  task: Task;
  input: MemoryInput;
  output: MemoryOutput;
  backend: StateBackend;
  sealed: SealedCheckpoint[];
}

async function startTask(t: ExecutionContext, o: StartOptions): Promise<Fixture> {
  const input = o.input ?? memoryInput();
  const output = o.output ?? memoryOutput();
  const backend = o.backend ?? createMemoryBackend();
  const sealed: SealedCheckpoint[] = [];
  const task = new Task({
    job: o.job,
    stage: o.stage,
    partition: 0,
    inputStream: o.stage.input.kind === 'stream' ? o.stage.input.stream : 'in',
    outputPartitions: o.outputPartitions ?? 2,
    backend,
    openInput: o.openInput ?? input.open,
    output: o.taskOutput ?? output,
    logger: pino({ level: 'silent' }),
    now: o.now,
    checkpointing: {
      generation: o.generation ?? 1,
      upstream: o.upstream ?? [],
      sinkMode: o.sinkMode,
      maxAlignmentRecords: o.maxAlignmentRecords,
      maxUncommittedRecords: o.maxUncommittedRecords,
      sealed: async (s) => {
        sealed.push(s);
        await o.onSealed?.(s);
      },
    },
  });
  t.teardown(async () => {
    output.release(); // a stop waits for outstanding work: a test that held the output must not hang here
    await task.stop();
  });
  task.done.catch(() => undefined); // each test asserts on done itself
  await task.start();
  return { task, input, output, backend, sealed };
}

/** A backend that records every batch it writes. */
function spyBackend(inner: StateBackend = createMemoryBackend()) {
  const writes: (readonly BackendWrite[])[] = [];
  const backend: StateBackend = {
    getSync: (key) => inner.getSync(key),
    getMany: (keys) => inner.getMany(keys),
    entries: (prefix) => inner.entries(prefix),
    close: () => inner.close(),
    async write(batch) {
      writes.push(batch);
      await inner.write(batch);
    },
  };
  return { backend, writes };
}

/** Waits (microtasks and macrotasks) until `condition` holds, or fails after 2 s. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 2 s');
    await sleep(1);
  }
}

const hex = (keys: readonly Uint8Array[]) => keys.map((k) => Buffer.from(k).toString('hex')).sort();
const ids = (output: MemoryOutput) => output.published.map((m) => m.msgId);
const bodies = (output: MemoryOutput) => output.published.map((m) => decodeMsgpack(m.data));
const checkpoints = (sealed: readonly SealedCheckpoint[]) => sealed.map((s) => s.checkpoint);

/** Pushes a click of `user` to a source task's input. */
function click(input: MemoryInput, user: string, c: Click): number {
  return input.push({ data: encodeMsgpack(c), headers: { 'Mr-Key': user, 'Mr-Ts': '1000' } });
}

function order(input: MemoryInput, o: { emit?: number } = {}): number {
  return input.push({ data: encodeMsgpack(o), headers: { 'Mr-Key': 'k', 'Mr-Ts': '1000' } });
}

/** Pushes a record of the internal stream clicks__s1 as `producer` of `generation` published it (under `msgId`, if given). */
function view(input: MemoryInput, producer: string, generation: number, page: string, user = 'u', msgId?: string): number {
  const v: View = { user, page, n: 1 };
  return input.push({
    data: encodeMsgpack(v),
    headers: { 'Mr-Key': page, 'Mr-Ts': '1000', 'Mr-Producer': producer, 'Mr-Gen': String(generation), ...(msgId ? { 'Nats-Msg-Id': msgId } : {}) },
  });
}

/** Pushes barrier `checkpoint` as `producer` of `generation` published it: headers only, empty body. */
function barrier(input: MemoryInput, producer: string, generation: number, checkpoint: number): number {
  return input.push({
    data: new Uint8Array(0),
    headers: { 'Mr-Barrier': String(checkpoint), 'Mr-Producer': producer, 'Mr-Gen': String(generation) },
  });
}

/** The input sequences, in processing order, of what an S1 task in `immediate` mode published (ids end in `:<seq>:<i>`). */
const processedSeqs = (output: MemoryOutput) => output.published.map((m) => Number(m.msgId.split(':').at(-2)));

/** The per-page counts the backend holds for the given pages (0 when none). */
function pageCounts(backend: StateBackend, pages: readonly string[]): Record<string, number> {
  const space = keyspace(CLICKS, PerPage.name, 0);
  const out: Record<string, number> = {};
  for (const page of pages) {
    const bytes = backend.getSync(space.state(page, 'n'));
    out[page] = bytes ? (decodeMsgpack(bytes) as number) : 0;
  }
  return out;
}

function storedCount(backend: StateBackend, jobName: string, operator: string, key: string): unknown {
  const bytes = backend.getSync(keyspace(jobName, operator, 0).state(key, 'n'));
  return bytes && decodeMsgpack(bytes);
}

/** The staged outputs the backend holds for checkpoint `n` of ORDERS_S0, as [subject, body, key]. */
function stagedAt(backend: StateBackend, n: number): unknown {
  const bytes = backend.getSync(stagedKey(ORDERS, 's0', 0, n));
  if (!bytes) return undefined;
  const records: unknown[] = [];
  new StagedOutputs(bytes).forEach((subject, data, key) => records.push([subject, decodeMsgpack(data), key]));
  return records;
}

// ---------------------------------------------------------------------------
// A source task

test('triggered, a source task seals state, timers, [position, n, generation] and the undo record of n in one batch, which lands before sealed() is told', async (t) => {
  const spy = spyBackend();
  const clock = manualClock(1000);
  const positionsAtSealed: unknown[] = [];
  const { task, input, sealed } = await startTask(t, {
    job: CLICKS,
    stage: S0,
    generation: 3,
    backend: spy.backend,
    now: clock.now,
    onSealed: () => void positionsAtSealed.push(readTaskPosition(spy.backend, CLICKS, 's0', 0)),
  });
  click(input, 'alice', { page: 'home' });
  click(input, 'bob', { page: 'cart', timerIn: 60_000 });
  click(input, 'alice', { page: 'cart' });
  await input.idle();
  t.is(spy.writes.length, 0, 'nothing is written before a trigger');

  task.triggerCheckpoint(1);
  await until(() => sealed.length === 1);
  const space = keyspace(CLICKS, PerUser.name, 0);
  const position = positionKey(CLICKS, 's0', 0);
  t.is(spy.writes.length, 1);
  const undo = undoKey(CLICKS, 's0', 0, 1, 0);
  t.deepEqual(hex(spy.writes[0]!.map((w) => w.key)), hex([space.state('alice', 'n'), space.state('bob', 'n'), space.timer(61_000, 'bob'), position, undo]));
  t.like(sealed[0], { task: `${CLICKS}/s0/0`, checkpoint: 1, generation: 3, position: 3 });
  t.deepEqual(hex(sealed[0]!.writes.map((w) => w.key)), hex(spy.writes[0]!.slice(0, -1).map((w) => w.key)), 'sealed() gets the batch that was written, without its undo record');
  t.deepEqual(hex(sealed[0]!.prefixes), hex([position, stagedPrefix(CLICKS, 's0', 0), space.statePrefix, space.timerPrefix]));
  t.deepEqual(positionsAtSealed, [{ position: 3, checkpoint: 1, generation: 3 }]);
  t.is(storedCount(spy.backend, CLICKS, PerUser.name, 'alice'), 2);
  t.is(task.committedCheckpoint, 1);
});

test('a trigger for a checkpoint not above the last sealed one is ignored', async (t) => {
  const { task, input, sealed } = await startTask(t, { job: CLICKS, stage: S0 });
  click(input, 'alice', { page: 'home' });
  await input.idle();
  task.triggerCheckpoint(2);
  task.triggerCheckpoint(2);
  task.triggerCheckpoint(1);
  click(input, 'alice', { page: 'home' });
  await input.idle();
  task.triggerCheckpoint(0);
  task.triggerCheckpoint(3);
  await until(() => sealed.length === 2);
  await sleep(10);
  t.deepEqual(sealed.map((s) => [s.checkpoint, s.position]), [[2, 1], [3, 2]]);
});

test('barrier n goes to every partition of the internal output once everything published before it is acknowledged; records wait meanwhile', async (t) => {
  const output = memoryOutput();
  const { task, input, sealed } = await startTask(t, { job: CLICKS, stage: S0, generation: 3, output });
  output.hold();
  click(input, 'alice', { page: 'home' });
  click(input, 'bob', { page: 'cart' });
  await input.idle();
  task.triggerCheckpoint(1);
  click(input, 'carol', { page: 'home' });
  await sleep(10);
  t.deepEqual(output.barriers, [], 'no barrier while earlier outputs are unacknowledged');
  t.is(sealed.length, 0, 'nor does the seal land: state never runs ahead of its outputs');
  t.is(task.processed, 2, 'the record after the trigger waits for the barriers');

  output.release();
  await until(() => output.published.length === 3 && sealed.length === 1);
  t.deepEqual(output.barriers, [
    { subject: 'mr.clicks__s1.0', checkpoint: 1, msgId: `${CLICKS}/s0/0:3:b:1:0`, after: 2 },
    { subject: 'mr.clicks__s1.1', checkpoint: 1, msgId: `${CLICKS}/s0/0:3:b:1:1`, after: 2 },
  ]);
  t.deepEqual(ids(output), [`${CLICKS}/s0/0:3:1:0`, `${CLICKS}/s0/0:3:2:0`, `${CLICKS}/s0/0:3:3:0`], 'outputs carry the generation');
});

/** A TaskOutput over `inner` whose `flushed()` promises settle only when the test opens them. */
function gatedFlushes(inner: MemoryOutput) {
  const calls: { readonly barriersBefore: number; opened: boolean; open(): void }[] = [];
  const output: TaskOutput = {
    publish: inner.publish,
    barrier: inner.barrier,
    get outstanding() {
      return inner.outstanding;
    },
    window: inner.window,
    capacity: () => inner.capacity(),
    mark: () => inner.mark(),
    flushed: (mark) =>
      new Promise((resolve, reject) => {
        const call = {
          barriersBefore: inner.barriers.length,
          opened: false,
          open: () => {
            if (call.opened) return;
            call.opened = true;
            inner.flushed(mark).then(resolve, reject);
          },
        };
        calls.push(call);
      }),
    close: () => inner.close(),
  };
  /** Opens the waiting flushes that `which` selects. */
  const open = (which: (call: { barriersBefore: number }) => boolean) => calls.filter((c) => !c.opened && which(c)).forEach((c) => c.open());
  return { output, calls, open };
}

test('after publishing its barriers a source task waits for their acknowledgement before the next record', async (t) => {
  const inner = memoryOutput();
  const gated = gatedFlushes(inner);
  const { task, input } = await startTask(t, { job: CLICKS, stage: S0, output: inner, taskOutput: gated.output });
  t.teardown(() => gated.open(() => true)); // runs before the fixture's stop
  click(input, 'alice', { page: 'home' });
  await input.idle();
  task.triggerCheckpoint(1);
  click(input, 'bob', { page: 'home' });
  await until(() => gated.calls.length > 0);
  await sleep(5);
  t.deepEqual(inner.barriers, [], 'no barrier until what precedes it is flushed');
  await until(() => (gated.open((c) => c.barriersBefore === 0), inner.barriers.length === 2));
  await until(() => gated.calls.some((c) => c.barriersBefore === 2));
  await sleep(10);
  t.is(task.processed, 1, 'no record while the barriers are unacknowledged');
  gated.open(() => true);
  await until(() => task.processed === 2);
  t.deepEqual(inner.barriers.map((b) => b.after), [1, 1]);
});

test('a rejected flush before the barriers fails the task; no barrier is published', async (t) => {
  const output = memoryOutput();
  const { task, input } = await startTask(t, { job: CLICKS, stage: S0, output });
  output.hold();
  click(input, 'alice', { page: 'home' });
  await input.idle();
  task.triggerCheckpoint(1);
  const rejected = new Error('JetStream rejected the publish');
  output.fail(rejected);
  t.is(await t.throwsAsync(task.done), rejected);
  t.is(task.state, 'failed');
  t.deepEqual(output.barriers, []);
});

test('a rejected sealed() (upload or acknowledgement failed) fails the task', async (t) => {
  const broken = new Error('snapshot upload failed');
  const { task, input } = await startTask(t, {
    job: CLICKS,
    stage: S0,
    onSealed: () => {
      throw broken;
    },
  });
  click(input, 'alice', { page: 'home' });
  await input.idle();
  task.triggerCheckpoint(1);
  t.is(await t.throwsAsync(task.done), broken);
  t.is(task.state, 'failed');
});

test('processing-time timers do not fire while the barriers of a checkpoint are on their way; they fire after them', async (t) => {
  const clock = manualClock(1000);
  const output = memoryOutput();
  const { task, input } = await startTask(t, { job: CLICKS, stage: S0, generation: 2, output, now: clock.now });
  output.hold();
  click(input, 'alice', { page: 'home', timerIn: 10 });
  await input.idle();
  task.triggerCheckpoint(1);
  clock.advance(100);
  await sleep(40); // the wake-up (armed 10 ms ahead) comes and finds the task paused
  t.deepEqual(ids(output), [`${CLICKS}/s0/0:2:1:0`], 'the due timer waits');

  output.release();
  await until(() => output.published.length === 2);
  t.is(output.published[1]!.msgId, `${CLICKS}/s0/0:2:t:1010:alice:0`);
  t.deepEqual(decodeMsgpack(output.published[1]!.data), { user: 'alice', page: 'reminder', n: 0 });
  t.deepEqual(output.barriers.map((b) => b.after), [1, 1], "the timer's output follows the barriers");
});

test('stop() does not seal: the restarted task resumes after the checkpoint and processes the rest again under the same ids', async (t) => {
  const spy = spyBackend();
  const input = memoryInput();
  const first = await startTask(t, { job: CLICKS, stage: S0, generation: 3, backend: spy.backend, input });
  click(input, 'alice', { page: 'home' });
  click(input, 'alice', { page: 'cart' });
  await input.idle();
  first.task.triggerCheckpoint(1);
  await until(() => first.sealed.length === 1);
  click(input, 'alice', { page: 'pay' });
  await input.idle();
  await first.task.stop();
  t.is(first.task.state, 'stopped');
  t.is(spy.writes.length, 1, 'only the checkpoint was written');
  t.deepEqual(readTaskPosition(spy.backend, CLICKS, 's0', 0), { position: 2, checkpoint: 1, generation: 3 });
  t.is(storedCount(spy.backend, CLICKS, PerUser.name, 'alice'), 2);

  const second = await startTask(t, { job: CLICKS, stage: S0, generation: 3, backend: spy.backend, input });
  await input.idle();
  t.deepEqual(input.opens, [1, 3]);
  t.deepEqual(
    second.output.published.map((m) => [m.msgId, decodeMsgpack(m.data)]),
    first.output.published.slice(2).map((m) => [m.msgId, decodeMsgpack(m.data)]),
  );
  t.deepEqual(bodies(second.output), [{ user: 'alice', page: 'pay', n: 3 }]);

  second.task.triggerCheckpoint(1);
  second.task.triggerCheckpoint(2);
  await until(() => second.sealed.length === 1);
  t.deepEqual(second.sealed.map((s) => [s.checkpoint, s.position]), [[2, 3]], 'the restored checkpoint counts as sealed');
});

/** One message of a hand-made input: a click of 'alice' with stream sequence `seq`. */
function deliveredClick(seq: number, deliverySequence: number): InputMessage {
  const headers = new Map([['Mr-Key', 'alice'], ['Mr-Ts', '1000']]);
  const c: Click = { page: 'home' };
  return {
    seq,
    subject: 'mr.clicks-in.0',
    data: encodeMsgpack(c),
    headers: { get: (name) => headers.get(name) ?? '', has: (name) => headers.has(name) },
    info: { timestampNanos: 0, deliverySequence },
    ack: () => undefined,
  };
}

test('an input whose delivery sequence jumps (a message lost in transit) is reopened after the last record seen; nothing is lost', async (t) => {
  const stored = [1, 2, 3, 4, 5];
  const opens: number[] = [];
  let stops = 0;
  const openInput: InputFactory = async (startSeq) => {
    const first = opens.push(startSeq) === 1;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    async function* messages(): AsyncGenerator<InputMessage> {
      let delivery = 0;
      for (const seq of stored.filter((s) => s >= startSeq)) {
        delivery++;
        if (first && seq === 3) continue; // delivered by the server, never received
        yield deliveredClick(seq, delivery);
      }
      await stopped;
    }
    return { messages: messages(), stop: () => (stops++, stop()) };
  };
  const { task, output, sealed } = await startTask(t, { job: CLICKS, stage: S0, openInput });
  await until(() => output.published.length === 5);
  t.deepEqual(opens, [1, 3]);
  t.is(stops, 1, 'the first input was stopped');
  t.deepEqual(ids(output), [1, 2, 3, 4, 5].map((seq) => `${CLICKS}/s0/0:1:${seq}:0`));
  t.deepEqual(bodies(output).map((b) => (b as { n: number }).n), [1, 2, 3, 4, 5]);
  task.triggerCheckpoint(1);
  await until(() => sealed.length === 1);
  t.is(sealed[0]!.position, 5);
});

// ---------------------------------------------------------------------------
// Sink outputs

test('transactional sink: outputs are staged with the seal under stagedKey(n) and published only when n commits, as <task>:c<n>:<i>', async (t) => {
  const { task, input, output, backend, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0 });
  order(input, { emit: 2 });
  order(input);
  await input.idle();
  t.deepEqual(output.published, [], 'nothing before the checkpoint');
  task.triggerCheckpoint(1);
  await until(() => sealed.length === 1);
  t.deepEqual(output.published, [], 'nothing before the commit');
  t.deepEqual(output.barriers, [], 'a sink publishes no barriers');
  const expected = [
    ['mr.orders-out.0', { key: 'k', n: 1, i: 0 }, 'k'],
    ['mr.orders-out.0', { key: 'k', n: 1, i: 1 }, 'k'],
    ['mr.orders-out.0', { key: 'k', n: 2, i: 0 }, 'k'],
  ];
  t.deepEqual(stagedAt(backend, 1), expected);

  task.checkpointCommitted(1);
  t.deepEqual(ids(output), [`${ORDERS_TASK}:c1:0`, `${ORDERS_TASK}:c1:1`, `${ORDERS_TASK}:c1:2`]);
  t.deepEqual(output.published.map((m) => [m.subject, decodeMsgpack(m.data), m.key]), expected);
});

test('a commit publishes the staged outputs of every checkpoint up to it, oldest first, and none newer', async (t) => {
  const { task, input, output, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0 });
  for (const n of [1, 2, 3]) {
    order(input);
    await input.idle();
    task.triggerCheckpoint(n);
  }
  await until(() => sealed.length === 3);
  task.checkpointCommitted(2);
  t.deepEqual(ids(output), [`${ORDERS_TASK}:c1:0`, `${ORDERS_TASK}:c2:0`]);
  task.checkpointCommitted(2);
  t.is(output.published.length, 2, 'a repeated commit publishes nothing again');
  task.checkpointCommitted(3);
  t.deepEqual(ids(output), [`${ORDERS_TASK}:c1:0`, `${ORDERS_TASK}:c2:0`, `${ORDERS_TASK}:c3:0`]);
  t.deepEqual(bodies(output).map((b) => (b as { n: number }).n), [1, 2, 3]);
});

test("a committed checkpoint's staged outputs are deleted from the backend with the next seal, once acknowledged", async (t) => {
  const { task, input, backend, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0 });
  order(input);
  await input.idle();
  task.triggerCheckpoint(1);
  await until(() => sealed.length === 1);
  task.checkpointCommitted(1);
  await sleep(5);
  t.not(stagedAt(backend, 1), undefined, 'kept until the next seal');
  order(input);
  await input.idle();
  task.triggerCheckpoint(2);
  await until(() => sealed.length === 2);
  t.is(stagedAt(backend, 1), undefined);
  t.deepEqual(stagedAt(backend, 2), [['mr.orders-out.0', { key: 'k', n: 2, i: 0 }, 'k']]);
});

test('a task restarted from a backend holding staged outputs publishes them at start, under the same ids', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const first = await startTask(t, { job: ORDERS, stage: ORDERS_S0, backend, input });
  order(input);
  order(input, { emit: 2 });
  await input.idle();
  first.task.triggerCheckpoint(1);
  await until(() => first.sealed.length === 1);
  order(input); // processed, never sealed: dropped at stop, processed again after the restart
  await input.idle();
  await first.task.stop();
  t.deepEqual(first.output.published, [], 'checkpoint 1 never committed while the first task ran');

  const second = await startTask(t, { job: ORDERS, stage: ORDERS_S0, backend, input });
  t.deepEqual(ids(second.output), [`${ORDERS_TASK}:c1:0`, `${ORDERS_TASK}:c1:1`, `${ORDERS_TASK}:c1:2`]);
  t.deepEqual(bodies(second.output), [
    { key: 'k', n: 1, i: 0 },
    { key: 'k', n: 2, i: 0 },
    { key: 'k', n: 2, i: 1 },
  ]);
  await input.idle();
  second.task.triggerCheckpoint(2);
  await until(() => second.sealed.length === 1);
  t.deepEqual(stagedAt(backend, 2), [['mr.orders-out.0', { key: 'k', n: 3, i: 0 }, 'k']], 'record 3 was processed again, from the checkpoint');
  t.is(second.output.published.length, 3, 'and waits for its own commit');
});

test('a restarted task asks its output which staged ids an earlier run already stored, and publishes only the others', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const first = await startTask(t, { job: ORDERS, stage: ORDERS_S0, backend, input });
  order(input, { emit: 3 });
  await input.idle();
  const sealedFrom = Date.now();
  first.task.triggerCheckpoint(1);
  await until(() => first.sealed.length === 1);
  await first.task.stop();

  // The first run published c1:0 and c1:1, then died; the destination's duplicate window has passed since.
  const queries: unknown[] = [];
  const output = Object.assign(memoryOutput(), {
    storedIds: async (query: { subjects: readonly string[]; prefix: string; since: number }) => {
      queries.push(query);
      return new Set([`${ORDERS_TASK}:c1:0`, `${ORDERS_TASK}:c1:1`, `${ORDERS_TASK}:c9:0`]);
    },
  });
  await startTask(t, { job: ORDERS, stage: ORDERS_S0, backend, input, output });
  t.deepEqual(ids(output), [`${ORDERS_TASK}:c1:2`]);
  t.is(queries.length, 1);
  const query = queries[0] as { subjects: string[]; prefix: string; since: number };
  t.deepEqual(query.subjects, ['mr.orders-out.0']);
  t.is(query.prefix, `${ORDERS_TASK}:c`);
  t.true(query.since <= sealedFrom, 'the lookup starts no later than the seal');
});

test('immediate sink mode publishes at once, one id per record and output index, and stages nothing', async (t) => {
  const { task, input, output, backend, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0, generation: 4, sinkMode: 'immediate' });
  order(input, { emit: 2 });
  order(input);
  await input.idle();
  t.true(ids(output).every((id) => id.startsWith(`${ORDERS_TASK}:`)));
  t.deepEqual(
    ids(output).map((id) => id.split(':').slice(-2).join(':')),
    ['1:0', '1:1', '2:0'],
    'ids end in <seq>:<i>',
  );
  task.triggerCheckpoint(1);
  await until(() => sealed.length === 1);
  t.is(stagedAt(backend, 1), undefined);
  task.checkpointCommitted(1);
  t.is(output.published.length, 3, 'a commit publishes nothing more');
});

// A sink task publishes no barriers, so nothing else makes its seal wait for its outputs. Were the checkpoint
// acknowledged while they lacked their PubAck and were then lost (MR_PUBLISH_TIMEOUT, a node dying before the
// socket write), the job would roll back to this committed checkpoint and never produce them again.
test('immediate sink mode: a checkpoint is handed to sealed() only after the outputs before it are acknowledged', async (t) => {
  const output = memoryOutput();
  const { task, input, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0, sinkMode: 'immediate', output });
  output.hold();
  order(input);
  await input.idle();
  task.triggerCheckpoint(1);
  await sleep(20);
  t.deepEqual(sealed, [], 'not acknowledged while its outputs wait for PubAcks');
  output.release();
  await until(() => sealed.length === 1);
});

// Only internal outputs carry the generation in their ids (decision 003, "Generations in ids"): a sink
// output replayed by a later run keeps the id of its first publication.
test('immediate sink mode: a record replayed after a rollback is published under the id of its first publication, so JetStream drops the copy', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const run1 = await startTask(t, { job: ORDERS, stage: ORDERS_S0, generation: 1, sinkMode: 'immediate', backend, input });
  order(input, { emit: 2 });
  await input.idle();
  await run1.task.stop(); // the run fails before any checkpoint
  const run2 = await startTask(t, { job: ORDERS, stage: ORDERS_S0, generation: 2, sinkMode: 'immediate', backend, input });
  await input.idle();
  t.deepEqual(bodies(run2.output), bodies(run1.output), 'the same outputs again');
  t.deepEqual(ids(run2.output), ids(run1.output));
});

test('immediate sink mode behind an internal stream: a replayed record keeps its id though its input sequence changed', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const run1 = await startTask(t, { job: CLICKS, stage: S1, upstream: [A], generation: 1, sinkMode: 'immediate', outputPartitions: 1, backend, input });
  view(input, A, 1, 'home', 'u', `${A}:1:7:0`);
  view(input, A, 1, 'cart', 'u', `${A}:1:8:0`);
  await input.idle();
  await run1.task.stop(); // the run fails before any checkpoint
  // The upstream task replays its input seqs 7 and 8 in generation 2: new records at new positions of the internal stream.
  const run2 = await startTask(t, { job: CLICKS, stage: S1, upstream: [A], generation: 2, sinkMode: 'immediate', outputPartitions: 1, backend, input });
  view(input, A, 2, 'home', 'u', `${A}:2:7:0`);
  view(input, A, 2, 'cart', 'u', `${A}:2:8:0`);
  await input.idle();
  t.deepEqual(ids(run1.output), [`${S1_TASK}:${A}:7:0:0`, `${S1_TASK}:${A}:8:0:0`]);
  t.deepEqual(ids(run2.output).slice(-2), ids(run1.output), 'the replayed records publish under their first ids');
});

test('a source task goes at most maxUncommittedRecords past its last committed checkpoint, then waits for a commit', async (t) => {
  const { task, input, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0, maxUncommittedRecords: 3 });
  for (let i = 0; i < 8; i++) order(input);
  await until(() => task.processed === 3);
  await sleep(50);
  t.is(task.processed, 3, 'stops after 3 records past checkpoint 0');
  task.triggerCheckpoint(1); // seals at record 3
  await until(() => sealed.length === 1);
  await sleep(50);
  t.is(task.processed, 3, 'a seal alone does not release it: the checkpoint may still fail');
  task.checkpointCommitted(1);
  await until(() => task.processed === 6);
  await sleep(50);
  t.is(task.processed, 6, 'three more after the commit of checkpoint 1');
  task.triggerCheckpoint(2);
  await until(() => sealed.length === 2);
  task.checkpointCommitted(2);
  await until(() => task.processed === 8);
  t.deepEqual(sealed.map((s) => s.position), [3, 6]);
});

test('a source task waiting for a commit stops when asked', async (t) => {
  const { task, input } = await startTask(t, { job: ORDERS, stage: ORDERS_S0, maxUncommittedRecords: 2 });
  for (let i = 0; i < 4; i++) order(input);
  await until(() => task.processed === 2);
  await task.stop();
  t.is(task.state, 'stopped');
});

test('a rejected flush of published staged outputs fails the task', async (t) => {
  const output = memoryOutput();
  const { task, input, sealed } = await startTask(t, { job: ORDERS, stage: ORDERS_S0, output });
  order(input);
  await input.idle();
  task.triggerCheckpoint(1);
  await until(() => sealed.length === 1);
  output.hold();
  task.checkpointCommitted(1);
  const rejected = new Error('JetStream rejected the publish');
  output.fail(rejected);
  t.is(await t.throwsAsync(task.done), rejected);
  t.is(task.state, 'failed');
});

// ---------------------------------------------------------------------------
// A task behind an internal stream

test('behind an internal stream: records of a producer after its barrier n wait until barrier n came from every producer; the seal is at the last barrier', async (t) => {
  const countsAtSeal: Record<string, number>[] = [];
  const { task, input, output, backend, sealed } = await startTask(t, {
    job: CLICKS,
    stage: S1,
    upstream: [A, B],
    sinkMode: 'immediate',
    outputPartitions: 1,
    onSealed: () => void countsAtSeal.push(pageCounts(backend, ['home', 'cart'])),
  });
  view(input, A, 1, 'home'); //  1
  view(input, B, 1, 'cart'); //  2
  barrier(input, A, 1, 1); //    3
  view(input, A, 1, 'home'); //  4  held: after A's barrier
  view(input, B, 1, 'cart'); //  5  processed: B's barrier has not come
  await input.idle();
  t.deepEqual(processedSeqs(output), [1, 2, 5]);
  t.deepEqual(sealed, []);

  barrier(input, B, 1, 1); //    6  completes checkpoint 1
  view(input, A, 1, 'cart'); //  7
  await input.idle();
  await until(() => sealed.length === 1);
  t.deepEqual(processedSeqs(output), [1, 2, 5, 4, 7]);
  t.deepEqual(sealed.map((s) => [s.checkpoint, s.position, s.generation]), [[1, 6, 1]]);
  t.deepEqual(countsAtSeal, [{ home: 1, cart: 2 }], 'checkpoint 1 holds records 1, 2 and 5');
  t.deepEqual(
    readTaskPosition(backend, CLICKS, 's1', 0),
    { position: 6, checkpoint: 1, generation: 1, held: [[A, 3]] },
    "A's records after its barrier (3) are not in the state, though they precede the position",
  );
  t.deepEqual(sealed[0]!.resumeAfter, 3, 'a task resumed from checkpoint 1 reads again after sequence 3');
  t.deepEqual(output.barriers, [], 'a sink stage forwards no barriers');
  t.is(task.processed, 5, 'barriers are not records');
});

test('handed over at checkpoint n, a source task stops right after sealing n; resumed from n elsewhere, it processes exactly the rest', async (t) => {
  const input = memoryInput();
  const backend = createMemoryBackend();
  const first = await startTask(t, { job: CLICKS, stage: S0, backend, input });
  click(input, 'alice', { page: 'home' }); // 1
  click(input, 'alice', { page: 'cart' }); // 2
  await input.idle();
  t.false(first.task.stopAfter(0), 'a checkpoint not above the last sealed one cannot be the handover');
  t.true(first.task.stopAfter(1));
  first.task.triggerCheckpoint(1);
  click(input, 'alice', { page: 'pay' }); //  3: after the handover
  await first.task.done;
  t.is(first.task.state, 'stopped');
  t.true(first.task.handedOverAt > 0);
  t.deepEqual(first.sealed.map((s) => [s.checkpoint, s.position, s.resumeAfter]), [[1, 2, 2]], 'sealed and handed to sealed() before the task stopped');
  t.deepEqual(bodies(first.output).map((v) => (v as View).page), ['home', 'cart'], 'nothing after the seal was processed');
  t.is(first.output.barriers.length, 2, 'barrier 1 went to both partitions before the stop');

  const second = await startTask(t, { job: CLICKS, stage: S0, backend, input });
  await input.idle();
  t.deepEqual(input.opens.at(-1), 3);
  t.deepEqual(bodies(second.output), [{ user: 'alice', page: 'pay', n: 3 }]);
});

test('handed over at checkpoint n, a task behind an internal stream stops at its seal; resumed, it reads the held records again and only those', async (t) => {
  const input = memoryInput();
  const backend = createMemoryBackend();
  const options = { job: CLICKS, stage: S1, upstream: [A, B], sinkMode: 'immediate', outputPartitions: 1, backend, input } as const;
  const first = await startTask(t, options);
  t.true(first.task.stopAfter(1));
  view(input, A, 1, 'home'); //  1
  barrier(input, A, 1, 1); //    2
  view(input, A, 1, 'home'); //  3  held: epoch 2
  view(input, B, 1, 'cart'); //  4  processed: epoch 1
  barrier(input, B, 1, 1); //    5  completes checkpoint 1: the task stops here
  view(input, A, 1, 'cart'); //  6
  view(input, B, 1, 'home'); //  7
  await first.task.done;
  t.deepEqual(processedSeqs(first.output), [1, 4], 'neither the held record nor anything after the seal was processed');
  t.deepEqual(first.sealed.map((s) => [s.checkpoint, s.position, s.resumeAfter]), [[1, 5, 2]]);
  t.deepEqual(pageCounts(backend, ['home', 'cart']), { home: 1, cart: 1 });

  const second = await startTask(t, options);
  await input.idle();
  t.is(input.opens.at(-1), 3, 'the input reopens after the first held producer barrier');
  t.deepEqual(processedSeqs(second.output), [3, 6, 7], 'record 4 (in the state) and the barriers are passed over; record 3 is processed');
  t.deepEqual(pageCounts(backend, ['home', 'cart']), { home: 1, cart: 1 }, 'nothing sealed yet');
  barrier(input, A, 1, 2);
  barrier(input, B, 1, 2);
  await until(() => second.sealed.length === 1);
  t.deepEqual(pageCounts(backend, ['home', 'cart']), { home: 3, cart: 2 }, 'every record counted once, as in a run without handover');
});

test("behind an internal stream, transactional sink outputs belong to the checkpoint of their record's side of the barriers", async (t) => {
  const { task, input, output, sealed } = await startTask(t, { job: CLICKS, stage: S1, upstream: [A, B], outputPartitions: 1 });
  view(input, A, 1, 'home', 'u1'); //  1
  view(input, B, 1, 'cart', 'u2'); //  2
  barrier(input, A, 1, 1); //          3
  view(input, A, 1, 'home', 'u3'); //  4  held: checkpoint 2's
  view(input, B, 1, 'cart', 'u4'); //  5
  barrier(input, B, 1, 1); //          6
  view(input, B, 1, 'cart', 'u5'); //  7
  barrier(input, A, 1, 2); //          8
  barrier(input, B, 1, 2); //          9
  await input.idle();
  await until(() => sealed.length === 2);
  t.deepEqual(output.published, []);
  task.checkpointCommitted(1);
  t.deepEqual(bodies(output), [
    { page: 'home', n: 1, user: 'u1' },
    { page: 'cart', n: 1, user: 'u2' },
    { page: 'cart', n: 2, user: 'u4' },
  ]);
  task.checkpointCommitted(2);
  t.deepEqual(ids(output).slice(3), [`${CLICKS}/s1/0:c2:0`, `${CLICKS}/s1/0:c2:1`]);
  t.deepEqual(bodies(output).slice(3), [
    { page: 'home', n: 2, user: 'u3' },
    { page: 'cart', n: 3, user: 'u5' },
  ]);
});

test('a newer barrier abandons an incomplete alignment: the held records are processed before it, and the newer checkpoint aligns', async (t) => {
  const countsAtSeal: Record<string, number>[] = [];
  const { input, output, backend, sealed } = await startTask(t, {
    job: CLICKS,
    stage: S1,
    upstream: [A, B],
    sinkMode: 'immediate',
    onSealed: () => void countsAtSeal.push(pageCounts(backend, ['home', 'cart'])),
  });
  barrier(input, A, 1, 1); //    1  checkpoint 1 was aborted upstream: B never sends it
  view(input, A, 1, 'home'); //  2  held
  await input.idle();
  t.deepEqual(processedSeqs(output), []);
  barrier(input, A, 1, 2); //    3  gives checkpoint 1 up
  view(input, A, 1, 'home'); //  4  held for checkpoint 2
  view(input, B, 1, 'cart'); //  5
  barrier(input, B, 1, 2); //    6
  await input.idle();
  await until(() => sealed.length === 1);
  t.deepEqual(processedSeqs(output), [2, 5, 4]);
  t.deepEqual(sealed.map((s) => [s.checkpoint, s.position]), [[2, 6]]);
  t.deepEqual(countsAtSeal, [{ home: 1, cart: 1 }]);
});

test('an alignment that would hold more than maxAlignmentRecords is given up: the held records are processed and that checkpoint never seals', async (t) => {
  const { input, output, sealed } = await startTask(t, { job: CLICKS, stage: S1, upstream: [A, B], sinkMode: 'immediate', maxAlignmentRecords: 2 });
  barrier(input, A, 1, 1); //    1
  view(input, A, 1, 'home'); //  2  held
  view(input, A, 1, 'home'); //  3  held: the bound is reached
  view(input, B, 1, 'cart'); //  4
  barrier(input, B, 1, 1); //    5  too late for checkpoint 1: ignored
  view(input, B, 1, 'cart'); //  6  not held
  await input.idle();
  t.deepEqual(processedSeqs(output), [2, 3, 4, 6]);
  barrier(input, A, 1, 2); //    7
  barrier(input, B, 1, 2); //    8
  await input.idle();
  await until(() => sealed.length === 1);
  await sleep(5);
  t.deepEqual(sealed.map((s) => [s.checkpoint, s.position]), [[2, 8]]);
});

test('records and barriers of an older generation are ignored; one of a newer generation fails the task with MR_RUN_SUPERSEDED', async (t) => {
  const { task, input, output, sealed } = await startTask(t, { job: CLICKS, stage: S1, upstream: [A, B], generation: 2, sinkMode: 'immediate' });
  view(input, A, 1, 'home'); //  1
  barrier(input, A, 1, 1); //    2
  barrier(input, B, 1, 1); //    3  would complete checkpoint 1 if counted
  view(input, A, 2, 'home'); //  4
  await input.idle();
  await sleep(5);
  t.is(task.ignored, 3);
  t.deepEqual(processedSeqs(output), [4]);
  t.deepEqual(sealed, []);

  view(input, B, 3, 'cart'); //  5  a newer run exists: this one was rolled back
  const err = await t.throwsAsync<Error & { code?: string }>(task.done);
  t.is(err?.code, ErrorCodes.RUN_SUPERSEDED);
  t.is(task.state, 'failed');
  t.deepEqual(processedSeqs(output), [4]);
});

test('a task behind an internal stream ignores the coordinator trigger: its barriers come in its input', async (t) => {
  const { task, input, sealed } = await startTask(t, { job: CLICKS, stage: S1, upstream: [A, B] });
  view(input, A, 1, 'home');
  await input.idle();
  task.triggerCheckpoint(1);
  await sleep(10);
  t.deepEqual(sealed, []);
});

test('after a rollback to checkpoint 1 under generation 2, the leftovers of generation 1 are ignored and the replay ends in the counts of a run without failure', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const run1 = await startTask(t, { job: CLICKS, stage: S1, upstream: [A, B], generation: 1, backend, input });
  view(input, A, 1, 'home'); //  1
  view(input, B, 1, 'cart'); //  2
  barrier(input, A, 1, 1); //    3
  view(input, A, 1, 'home'); //  4  held, processed after the seal
  barrier(input, B, 1, 1); //    5  seal 1 at 5: home 1, cart 1
  view(input, B, 1, 'cart'); //  6
  await input.idle();
  await until(() => run1.sealed.length === 1);
  await run1.task.stop(); // the job fails: records 4 and 6 are in no checkpoint

  const countsAtSeal: Record<string, number>[] = [];
  const run2 = await startTask(t, {
    job: CLICKS,
    stage: S1,
    upstream: [A, B],
    generation: 2,
    backend,
    input,
    onSealed: () => void countsAtSeal.push(pageCounts(backend, ['home', 'cart'])),
  });
  // A and B restored their checkpoint 1 and produce again what followed their barriers.
  view(input, A, 2, 'home'); //  7
  view(input, B, 2, 'cart'); //  8
  barrier(input, A, 2, 2); //    9
  barrier(input, B, 2, 2); //   10
  await input.idle();
  await until(() => run2.sealed.length === 1);
  t.deepEqual(input.opens, [1, 4], 'the input reopens after A\'s barrier: A\'s held records are not in checkpoint 1');
  t.is(run2.task.ignored, 3, 'record 4, barrier 5 and record 6, all of generation 1');
  t.deepEqual(run2.sealed.map((s) => [s.checkpoint, s.position, s.generation]), [[2, 10, 2]]);
  // Without the failure: A sent home, home and B sent cart, cart before their barriers 2.
  t.deepEqual(countsAtSeal, [{ home: 2, cart: 2 }]);
});

/** A small seeded PRNG (mulberry32): the same interleavings on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

type Item = { kind: 'record'; page: string } | { kind: 'barrier'; checkpoint: number };

test('on random interleavings of three producers, checkpoint n holds exactly the records each producer sent before its barrier n, and every record is processed once', async (t) => {
  const producers = [`${CLICKS}/s0/0`, `${CLICKS}/s0/1`, `${CLICKS}/s0/2`];
  const pages = ['home', 'cart', 'pay'];
  const CHECKPOINTS = 3;
  for (let seed = 1; seed <= 25; seed++) {
    const random = prng(seed);
    // Each producer: a few records, barrier 1, a few records, barrier 2, ...
    const own: Item[][] = producers.map(() => {
      const items: Item[] = [];
      for (let epoch = 1; epoch <= CHECKPOINTS + 1; epoch++) {
        const records = Math.floor(random() * 4);
        for (let i = 0; i < records; i++) items.push({ kind: 'record', page: pages[Math.floor(random() * pages.length)]! });
        if (epoch <= CHECKPOINTS) items.push({ kind: 'barrier', checkpoint: epoch });
      }
      return items;
    });
    // Interleave them; the coordinator starts checkpoint n + 1 only after n, so no barrier n + 1 precedes a barrier n.
    const next = producers.map(() => 0);
    const barriersSent = producers.map(() => 0);
    const merged: { producer: number; item: Item }[] = [];
    for (;;) {
      const ready = producers
        .map((_, p) => p)
        .filter((p) => {
          const item = own[p]![next[p]!];
          return item !== undefined && (item.kind === 'record' || barriersSent.every((sent) => sent >= item.checkpoint - 1));
        });
      if (ready.length === 0) break;
      const p = ready[Math.floor(random() * ready.length)]!;
      const item = own[p]![next[p]!++]!;
      if (item.kind === 'barrier') barriersSent[p] = item.checkpoint;
      merged.push({ producer: p, item });
    }

    // The reference: a consistent cut per checkpoint, from each producer's own order.
    const expectedCounts: Record<string, number>[] = [];
    for (let n = 1; n <= CHECKPOINTS; n++) {
      const counts = Object.fromEntries(pages.map((page) => [page, 0]));
      for (const items of own) {
        for (const item of items.slice(0, items.findIndex((i) => i.kind === 'barrier' && i.checkpoint === n))) {
          if (item.kind === 'record') counts[item.page]!++;
        }
      }
      expectedCounts.push(counts);
    }

    const countsAtSeal: Record<string, number>[] = [];
    const f = await startTask(t, {
      job: CLICKS,
      stage: S1,
      upstream: producers,
      sinkMode: 'immediate',
      onSealed: () => void countsAtSeal.push(pageCounts(f.backend, pages)),
    });
    const recordSeqs: number[][] = producers.map(() => []);
    const lastBarrier: number[] = [];
    for (const { producer, item } of merged) {
      if (item.kind === 'record') recordSeqs[producer]!.push(view(f.input, producers[producer]!, 1, item.page));
      else lastBarrier[item.checkpoint - 1] = barrier(f.input, producers[producer]!, 1, item.checkpoint);
    }
    await f.input.idle();
    await until(() => f.sealed.length === CHECKPOINTS);
    const processed = processedSeqs(f.output);

    t.deepEqual(countsAtSeal, expectedCounts, `seed ${seed}: state of each checkpoint`);
    t.deepEqual(f.sealed.map((s) => s.position), lastBarrier, `seed ${seed}: positions`);
    t.deepEqual(checkpoints(f.sealed), [1, 2, 3]);
    t.deepEqual([...processed].sort((x, y) => x - y), recordSeqs.flat().sort((x, y) => x - y), `seed ${seed}: each record once`);
    for (const seqs of recordSeqs) {
      t.deepEqual(processed.filter((s) => seqs.includes(s)), seqs, `seed ${seed}: a producer's records in its order`);
    }
    await f.task.stop();
  }
});
