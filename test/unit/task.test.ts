/**
 * The Task's contract (docs/decisions/001-task-commit-protocol.md), run on
 * the real Task with in-memory ports: when it commits, what it acks, where
 * it resumes, which message ids it publishes, what it skips and when it fails.
 */
import test, { type ExecutionContext } from 'ava';
import pino from 'pino';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes } from '../../errors.js';
import { job, keyed, sink, source, value } from '../../index.js';
import { compileJob } from '../../runtime/plan/compile.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { keyspace, positionKey } from '../../runtime/state/keys.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import type { DeadLetter, InputFactory } from '../../runtime/task/ports.js';
import { Task } from '../../runtime/task/task.js';
import { decodeMsgpack, encodeMsgpack } from '../../runtime/wire/codec.js';
import { memoryInput, memoryOutput, type MemoryInput, type MemoryOutput } from '../../testing.js';

const JOB = 'orders';
const DAY_MS = 86_400_000;

interface Command {
  /** Outputs to emit. @default 1 */
  emit?: number;
  /** Throw from the handler. */
  fail?: boolean;
  /** Set a processing-time timer this far ahead of now. */
  timerIn?: number;
}

/** Counts records per key and emits `{ key, n, i }` `emit` times. */
const Counter = keyed({
  name: 'counter',
  state: { n: value({ default: 0 }) },
  onRecord(cmd: Command, ctx) {
    if (cmd.fail) throw new Error('bad order');
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    if (cmd.timerIn !== undefined) ctx.timers.processingTime(ctx.timers.now() + cmd.timerIn);
    return Array.from({ length: cmd.emit ?? 1 }, (_, i) => ({ key: ctx.key, n, i }));
  },
});

const stage = compileJob(job(JOB).from(source.stream<Command>('orders-in')).process(Counter).to(sink.stream('orders-out'))).stages[0]!;
const POSITION = positionKey(JOB, stage.id, 0);

/** A backend that records every batch and lets a test act just before it is written. */
function spyBackend(inner: StateBackend, beforeWrite: (batch: readonly BackendWrite[]) => void = () => undefined) {
  const writes: (readonly BackendWrite[])[] = [];
  const backend: StateBackend = {
    getSync: (key) => inner.getSync(key),
    entries: (prefix) => inner.entries(prefix),
    close: () => inner.close(),
    async write(batch) {
      beforeWrite(batch);
      writes.push(batch);
      await inner.write(batch);
    },
  };
  /** The input position each batch committed. */
  const positions = () => writes.map((b) => decodeMsgpack(b.find((w) => Buffer.compare(w.key, POSITION) === 0)!.value!) as number);
  return { backend, writes, positions };
}

interface Fixture {
  task: Task;
  input: MemoryInput;
  output: MemoryOutput;
  letters: DeadLetter[];
}

async function startTask(
  t: ExecutionContext,
  options: {
    backend?: StateBackend;
    input?: MemoryInput;
    output?: MemoryOutput;
    openInput?: InputFactory;
    commitEveryRecords?: number;
    commitIntervalMs?: number;
    now?: () => number;
  } = {},
): Promise<Fixture> {
  const input = options.input ?? memoryInput();
  const output = options.output ?? memoryOutput();
  const letters: DeadLetter[] = [];
  const task = new Task({
    job: JOB,
    stage,
    partition: 0,
    inputStream: 'orders-in',
    outputPartitions: 1,
    backend: options.backend ?? createMemoryBackend(),
    openInput: options.openInput ?? input.open,
    output,
    logger: pino({ level: 'silent' }),
    deadLetter: (letter) => letters.push(letter),
    commitEveryRecords: options.commitEveryRecords ?? 1000,
    commitIntervalMs: options.commitIntervalMs ?? 60_000,
    now: options.now,
  });
  t.teardown(() => task.stop());
  task.done.catch(() => undefined); // each test asserts on done itself
  await task.start();
  return { task, input, output, letters };
}

function push(input: MemoryInput, cmd: Command, key = 'k1'): number {
  return input.push({ data: encodeMsgpack(cmd), headers: { 'Mr-Key': key, 'Mr-Ts': '1000' } });
}

/** Waits (microtasks and macrotasks) until `condition` holds, or fails after 2 s. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 2 s');
    await sleep(1);
  }
}

const committedCount = (backend: StateBackend, key: string) => {
  const bytes = backend.getSync(keyspace(JOB, Counter.name, 0).state(key, 'n'));
  return bytes && decodeMsgpack(bytes);
};

test('the input is acked only after the outputs issued before the commit are flushed and the state batch is in the backend', async (t) => {
  const output = memoryOutput();
  const input = memoryInput();
  const seen: { outstanding: number; acked: number }[] = [];
  const spy = spyBackend(createMemoryBackend(), () => seen.push({ outstanding: output.outstanding, acked: input.acks.length }));
  output.hold();
  await startTask(t, { backend: spy.backend, input, output, commitEveryRecords: 2 });
  push(input, { emit: 2 });
  push(input, { emit: 1 });
  await input.idle();
  await sleep(5);

  t.is(output.outstanding, 3, 'the outputs wait for their PubAcks');
  t.deepEqual(input.acks, [], 'no ack before the outputs are flushed');
  t.is(spy.writes.length, 0, 'no state batch before the outputs are flushed');

  output.release();
  await until(() => input.acks.length > 0);
  t.deepEqual(seen, [{ outstanding: 0, acked: 0 }], 'the batch was written after the flush and before the ack');
  t.deepEqual(spy.positions(), [2]);
  t.deepEqual(input.acks, [2]);
  t.is(committedCount(spy.backend, 'k1'), 2);
});

test('ack-all: each commit acks only its last record', async (t) => {
  const { input } = await startTask(t, { commitEveryRecords: 3 });
  for (let i = 0; i < 6; i++) push(input, {});
  await until(() => input.acks.length === 2);
  t.deepEqual(input.acks, [3, 6]);
  t.is(input.ackFloor, 6);
});

test('commits are pipelined: processing goes on while one commit waits for its flush, and pauses at two', async (t) => {
  const output = memoryOutput();
  output.hold();
  const { task, input } = await startTask(t, { output, commitEveryRecords: 1 });
  for (let i = 0; i < 5; i++) push(input, {});
  await sleep(5);
  t.is(task.processed, 2, 'the second commit in flight makes the loop wait for the first');
  output.release();
  await input.idle();
  t.is(task.processed, 5);
  await until(() => input.ackFloor === 5);
});

test('a restarted task resumes after the committed position: records delivered again are skipped, state continues', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const first = await startTask(t, { backend, input });
  for (let i = 0; i < 3; i++) push(input, {});
  await input.idle();
  await first.task.stop();
  t.is(first.task.committedSeq, 3);

  const starts: number[] = [];
  const output = memoryOutput();
  // A consumer that ignores the start sequence and delivers everything again.
  const second = await startTask(t, { backend, output, openInput: (startSeq) => (starts.push(startSeq), input.open(1)) });
  push(input, {});
  push(input, {});
  await input.idle();
  t.deepEqual(starts, [4], 'the task asks for the record after its committed position');
  t.is(second.task.processed, 2, 'records 1-3 were delivered again and skipped');
  t.deepEqual(
    output.published.map((m) => [m.msgId, decodeMsgpack(m.data)]),
    [
      [`${JOB}/s0/0:4:0`, { key: 'k1', n: 4, i: 0 }],
      [`${JOB}/s0/0:5:0`, { key: 'k1', n: 5, i: 0 }],
    ],
  );
});

test('output message ids are deterministic: a replay after a crash publishes the same ids', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const lost = memoryOutput();
  const first = await startTask(t, { backend, input, output: lost });
  push(input, { emit: 2 }, 'a');
  push(input, { emit: 1 }, 'b');
  push(input, { emit: 3 }, 'a');
  await input.idle();
  lost.fail(new Error('connection to JetStream lost'));
  await first.task.stop(); // its commit fails: nothing is stored
  t.is(first.task.state, 'failed');
  t.is(backend.getSync(POSITION), undefined);

  const replay = memoryOutput();
  await startTask(t, { backend, input, output: replay });
  await input.idle();
  const ids = (o: MemoryOutput) => o.published.map((m) => m.msgId);
  t.deepEqual(ids(replay), ids(lost));
  t.deepEqual(ids(replay), [
    `${JOB}/s0/0:1:0`, `${JOB}/s0/0:1:1`,
    `${JOB}/s0/0:2:0`,
    `${JOB}/s0/0:3:0`, `${JOB}/s0/0:3:1`, `${JOB}/s0/0:3:2`,
  ]);
  t.deepEqual(replay.published.map((m) => m.data), lost.published.map((m) => m.data), 'and the same bodies');
});

test('a record whose body does not decode is skipped and reported with its seq and MR_RECORD_DECODE; the next are processed', async (t) => {
  const { task, input, output, letters } = await startTask(t);
  push(input, {});
  input.push({ data: Uint8Array.of(0x92, 0x01), headers: { 'Mr-Key': 'k1', 'Mr-Ts': '1000' } }); // an array of 2 with 1 element
  push(input, {});
  await input.idle();
  t.deepEqual(letters.map((l) => [l.seq, l.error.code, l.stream]), [[2, ErrorCodes.RECORD_DECODE, 'orders-in']]);
  t.deepEqual(letters[0]!.headers, { 'Mr-Key': 'k1', 'Mr-Ts': '1000' });
  t.deepEqual(output.published.map((m) => m.msgId), [`${JOB}/s0/0:1:0`, `${JOB}/s0/0:3:0`]);
  t.is(task.skipped, 1);
  await task.stop();
  t.deepEqual(input.acks, [3], 'a skipped record is acked with the rest');
});

test('a record whose user function throws is skipped and reported with MR_USER_FUNCTION and the operator; the next are processed', async (t) => {
  const backend = createMemoryBackend();
  const { task, input, output, letters } = await startTask(t, { backend });
  push(input, {});
  push(input, { fail: true });
  push(input, {});
  await input.idle();
  t.deepEqual(letters.map((l) => [l.seq, l.error.code, l.operator]), [[2, ErrorCodes.USER_FUNCTION, 'counter']]);
  t.is((letters[0]!.error.cause as Error).message, 'bad order');
  t.deepEqual(output.published.map((m) => (decodeMsgpack(m.data) as { n: number }).n), [1, 2]);
  await task.stop();
  t.is(committedCount(backend, 'k1'), 2);
});

// nats.js returns '' for a missing header, so presence is checked with has().
test('a record with headers but no Mr-Key header is skipped as MR_RECORD_DECODE', async (t) => {
  const { input, output, letters } = await startTask(t);
  input.push({ data: encodeMsgpack({}), headers: { 'Mr-Ts': '1000' } });
  await input.idle();
  t.deepEqual(output.published, [], 'nothing is emitted for it');
  t.deepEqual(letters.map((l) => [l.seq, l.error.code]), [[1, ErrorCodes.RECORD_DECODE]]);
});

test('a failing backend write fails the task: done rejects and nothing is acked', async (t) => {
  const broken = new Error('disk full');
  const spy = spyBackend(createMemoryBackend(), () => {
    throw broken;
  });
  const { task, input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 1 });
  push(input, {});
  const err = await t.throwsAsync(task.done);
  t.is(err, broken);
  t.is(task.state, 'failed');
  t.deepEqual(input.acks, []);
});

test('a rejected flush fails the task: done rejects, no state is written and nothing is acked', async (t) => {
  const output = memoryOutput();
  output.hold();
  const spy = spyBackend(createMemoryBackend());
  const { task, input } = await startTask(t, { backend: spy.backend, output, commitEveryRecords: 1 });
  push(input, {});
  await input.idle();
  const rejected = new Error('JetStream rejected the publish');
  output.fail(rejected);
  t.is(await t.throwsAsync(task.done), rejected);
  t.is(spy.writes.length, 0);
  t.deepEqual(input.acks, []);
});

test('graceful stop commits and acks the last processed record', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { task, input } = await startTask(t, { backend: spy.backend });
  for (let i = 0; i < 5; i++) push(input, {});
  await input.idle();
  t.is(spy.writes.length, 0, 'no commit due yet');
  await task.stop();
  await t.notThrowsAsync(task.done);
  t.is(task.state, 'stopped');
  t.deepEqual(spy.positions(), [5]);
  t.deepEqual(input.acks, [5]);
  t.is(committedCount(spy.backend, 'k1'), 5);
});

test('commits every N records', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 3 });
  for (let i = 0; i < 7; i++) push(input, {});
  await input.idle();
  await until(() => input.acks.length === 2);
  t.deepEqual(spy.positions(), [3, 6], 'record 7 waits for the next commit');
  t.deepEqual(input.acks, [3, 6]);
});

test('commits on the interval when fewer than N records arrived', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 1000, commitIntervalMs: 10 });
  push(input, {});
  push(input, {});
  await until(() => input.acks.length === 1);
  t.deepEqual(spy.positions(), [2]);
  t.deepEqual(input.acks, [2]);
  await sleep(40);
  t.is(spy.writes.length, 1, 'an idle task with nothing dirty does not commit again');
});

// setTimeout takes at most 2^31-1 ms; longer delays must be clamped, not overflow to 1 ms.
test('a timer more than 24.8 days ahead does not make the task wake every millisecond', async (t) => {
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  let overflowWarnings = 0;
  process.on('warning', (w) => (overflowWarnings += w.name === 'TimeoutOverflowWarning' ? 1 : 0));
  t.teardown(() => {
    process.removeAllListeners('warning');
    for (const l of listeners) process.on('warning', l);
  });
  let clockReads = 0;
  const { input } = await startTask(t, { now: () => (clockReads++, Date.now()) });
  push(input, { timerIn: 30 * DAY_MS });
  await input.idle();
  await sleep(50);
  await tick();
  t.true(clockReads <= 3, `the clock was read ${clockReads} times in 50 ms`);
  t.is(overflowWarnings, 0);
});
