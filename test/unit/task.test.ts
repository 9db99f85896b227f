/**
 * The Task run alone, without `checkpointing` (as the test harness runs it),
 * on the real Task with in-memory ports: when it seals its write-set, what it
 * stores, where it resumes, which message ids it publishes, what it skips and
 * when it fails. The checkpoint protocol is test/unit/task-checkpoint.test.ts.
 */
import test, { type ExecutionContext } from 'ava';
import pino from 'pino';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes } from '../../errors.js';
import { job, keyed, sink, source, value } from '../../index.js';
import { compileJob } from '../../runtime/plan/compile.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { keyspace, positionKey, timerPrefix } from '../../runtime/state/keys.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import { readTaskPosition } from '../../runtime/state/task-position.js';
import type { DeadLetter, InputFactory } from '../../runtime/task/ports.js';
import { Task } from '../../runtime/task/task.js';
import { decodeMsgpack, encodeMsgpack } from '../../runtime/wire/codec.js';
import { manualClock, memoryInput, memoryOutput, type MemoryInput, type MemoryOutput } from '../../testing.js';

const JOB = 'orders';
const TASK = `${JOB}/s0/0`;
const DAY_MS = 86_400_000;

interface Command {
  /** Outputs to emit. @default 1 */
  emit?: number;
  /** Throw from the handler. */
  fail?: boolean;
  /** Set a processing-time timer this far ahead of now. */
  timerIn?: number;
}

/** Counts records per key and emits `{ key, n, i }` `emit` times; a timer emits `{ key, timer }`. */
const Counter = keyed({
  name: 'counter',
  state: { n: value({ default: 0 }) },
  onRecord(cmd: Command, ctx) {
    if (cmd.fail) throw new Error('bad order');
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    if (cmd.timerIn !== undefined) ctx.timers.processingTime(ctx.timers.now() + cmd.timerIn);
    return Array.from({ length: cmd.emit ?? 1 }, (_, i): object => ({ key: ctx.key, n, i }));
  },
  onTimer(ts, ctx) {
    return { key: ctx.key, timer: ts };
  },
});

const stage = compileJob(job(JOB).from(source.stream<Command>('orders-in')).process(Counter).to(sink.stream('orders-out'))).stages[0]!;
const POSITION = positionKey(JOB, stage.id, 0);

/** A backend that records every batch, lets a test act just before one is written, and can "crash": later writes are lost. */
function spyBackend(inner: StateBackend, beforeWrite: (batch: readonly BackendWrite[]) => void = () => undefined) {
  const writes: (readonly BackendWrite[])[] = [];
  let crashed = false;
  const backend: StateBackend = {
    getSync: (key) => inner.getSync(key),
    getMany: (keys) => inner.getMany(keys),
    entries: (prefix) => inner.entries(prefix),
    close: () => inner.close(),
    async write(batch) {
      if (crashed) return;
      beforeWrite(batch);
      writes.push(batch);
      await inner.write(batch);
    },
  };
  /** The input position each batch stored. */
  const positions = () =>
    writes.map((b) => (decodeMsgpack(b.find((w) => Buffer.compare(w.key, POSITION) === 0)!.value!) as number[])[0]);
  return { backend, writes, positions, crash: () => (crashed = true) };
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
    now: options.now,
  });
  t.teardown(async () => {
    output.release(); // a stop waits for outstanding work: a test that held the output must not hang here
    await task.stop();
  });
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

/** The count of `key` the backend holds (undefined: never sealed). */
const storedCount = (backend: StateBackend, key: string) => {
  const bytes = backend.getSync(keyspace(JOB, Counter.name, 0).state(key, 'n'));
  return bytes && decodeMsgpack(bytes);
};

const ids = (output: MemoryOutput) => output.published.map((m) => m.msgId);

async function storedTimerCount(backend: StateBackend): Promise<number> {
  let n = 0;
  for await (const _ of backend.entries(timerPrefix(JOB, Counter.name, 0))) n++;
  return n;
}

test('seals state and position into the backend every commitEveryRecords records, as [position, checkpoint 0, generation 0]', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { task, input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 3 });
  for (let i = 0; i < 7; i++) push(input, {});
  await input.idle();
  await until(() => spy.writes.length === 2);
  await sleep(5);
  t.deepEqual(spy.positions(), [3, 6], 'record 7 waits for the next seal');
  t.deepEqual(readTaskPosition(spy.backend, JOB, stage.id, 0), { position: 6, checkpoint: 0, generation: 0 });
  t.is(storedCount(spy.backend, 'k1'), 6);
  t.is(task.committedSeq, 6);
});

test('each seal is one batch holding the state and the position together', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 2 });
  push(input, {}, 'a');
  push(input, {}, 'b');
  await until(() => spy.writes.length === 1);
  const space = keyspace(JOB, Counter.name, 0);
  const keys = spy.writes[0]!.map((w) => Buffer.from(w.key).toString('hex')).sort();
  const expected = [space.state('a', 'n'), space.state('b', 'n'), POSITION].map((k) => Buffer.from(k).toString('hex')).sort();
  t.deepEqual(keys, expected);
});

test('graceful stop seals what was processed since the last seal', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { task, input } = await startTask(t, { backend: spy.backend });
  for (let i = 0; i < 5; i++) push(input, {});
  await input.idle();
  t.is(spy.writes.length, 0, 'no seal due yet');
  await task.stop();
  await t.notThrowsAsync(task.done);
  t.is(task.state, 'stopped');
  t.deepEqual(spy.positions(), [5]);
  t.deepEqual(readTaskPosition(spy.backend, JOB, stage.id, 0), { position: 5, checkpoint: 0, generation: 0 });
  t.is(storedCount(spy.backend, 'k1'), 5);
});

test('a stop with nothing processed since the last seal writes nothing more', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { task, input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 2 });
  for (let i = 0; i < 4; i++) push(input, {});
  await input.idle();
  await until(() => spy.writes.length === 2);
  await task.stop();
  t.deepEqual(spy.positions(), [2, 4]);
});

test('outputs are published at once, before any seal, under ids <task>:<seq>:<i>', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const { input, output } = await startTask(t, { backend: spy.backend });
  push(input, { emit: 2 }, 'a');
  push(input, { emit: 1 }, 'b');
  await input.idle();
  t.is(spy.writes.length, 0);
  t.deepEqual(
    output.published.map((m) => [m.subject, m.msgId, m.key, decodeMsgpack(m.data)]),
    [
      ['mr.orders-out.0', `${TASK}:1:0`, 'a', { key: 'a', n: 1, i: 0 }],
      ['mr.orders-out.0', `${TASK}:1:1`, 'a', { key: 'a', n: 1, i: 1 }],
      ['mr.orders-out.0', `${TASK}:2:0`, 'b', { key: 'b', n: 1, i: 0 }],
    ],
  );
  t.deepEqual(output.barriers, [], 'a task alone publishes no barriers');
});

test('the task never acks its input: the backend, not the consumer, says where it resumes', async (t) => {
  const { task, input } = await startTask(t, { commitEveryRecords: 2 });
  for (let i = 0; i < 5; i++) push(input, {});
  await input.idle();
  await task.stop();
  t.is(task.committedSeq, 5);
  t.deepEqual(input.acks, []);
});

test('a restarted task resumes after the sealed position: records delivered again are skipped, state continues', async (t) => {
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
  t.deepEqual(starts, [4], 'the task asks for the record after its sealed position');
  t.is(second.task.processed, 2, 'records 1-3 were delivered again and skipped');
  t.deepEqual(
    output.published.map((m) => [m.msgId, decodeMsgpack(m.data)]),
    [
      [`${TASK}:4:0`, { key: 'k1', n: 4, i: 0 }],
      [`${TASK}:5:0`, { key: 'k1', n: 5, i: 0 }],
    ],
  );
});

test('output message ids are deterministic: records replayed after a crash are published under the same ids with the same bodies', async (t) => {
  const spy = spyBackend(createMemoryBackend());
  const input = memoryInput();
  const lost = memoryOutput();
  const first = await startTask(t, { backend: spy.backend, input, output: lost, commitEveryRecords: 2 });
  push(input, { emit: 2 }, 'a');
  push(input, { emit: 1 }, 'b');
  push(input, { emit: 3 }, 'a');
  await input.idle();
  await until(() => spy.writes.length === 1);
  spy.crash(); // what the task writes from now on never lands
  await first.task.stop();
  t.deepEqual(readTaskPosition(spy.backend, JOB, stage.id, 0).position, 2);

  const replay = memoryOutput();
  const second = await startTask(t, { backend: spy.backend, input, output: replay });
  await input.idle();
  t.is(second.task.processed, 1, 'only record 3 is processed again');
  t.deepEqual(ids(replay), [`${TASK}:3:0`, `${TASK}:3:1`, `${TASK}:3:2`]);
  t.deepEqual(
    replay.published.map((m) => [m.msgId, decodeMsgpack(m.data)]),
    lost.published.slice(3).map((m) => [m.msgId, decodeMsgpack(m.data)]),
    'record 3 is published again exactly as the first time',
  );
});

test('a record whose body does not decode is skipped and reported with its seq and MR_RECORD_DECODE; the next are processed', async (t) => {
  const { task, input, output, letters } = await startTask(t);
  push(input, {});
  input.push({ data: Uint8Array.of(0x92, 0x01), headers: { 'Mr-Key': 'k1', 'Mr-Ts': '1000' } }); // an array of 2 with 1 element
  push(input, {});
  await input.idle();
  t.deepEqual(letters.map((l) => [l.seq, l.error.code, l.stream, l.task]), [[2, ErrorCodes.RECORD_DECODE, 'orders-in', TASK]]);
  t.deepEqual(letters[0]!.headers, { 'Mr-Key': 'k1', 'Mr-Ts': '1000' });
  t.deepEqual(ids(output), [`${TASK}:1:0`, `${TASK}:3:0`]);
  t.is(task.skipped, 1);
  await task.stop();
  t.is(task.committedSeq, 3, 'a skipped record is sealed past with the rest');
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
  t.is(storedCount(backend, 'k1'), 2, 'the failed record changed no state');
});

// nats.js returns '' for a missing header, so presence is checked with has().
test('a record with headers but no Mr-Key header is skipped as MR_RECORD_DECODE', async (t) => {
  const { input, output, letters } = await startTask(t);
  input.push({ data: encodeMsgpack({}), headers: { 'Mr-Ts': '1000' } });
  await input.idle();
  t.deepEqual(output.published, [], 'nothing is emitted for it');
  t.deepEqual(letters.map((l) => [l.seq, l.error.code]), [[1, ErrorCodes.RECORD_DECODE]]);
});

test('a failing backend write fails the task: done rejects with that error', async (t) => {
  const broken = new Error('disk full');
  const spy = spyBackend(createMemoryBackend(), () => {
    throw broken;
  });
  const { task, input } = await startTask(t, { backend: spy.backend, commitEveryRecords: 1 });
  push(input, {});
  t.is(await t.throwsAsync(task.done), broken);
  t.is(task.state, 'failed');
  t.is(spy.backend.getSync(POSITION), undefined);
});

test('the task stops reading while the output window is full, and goes on when PubAcks come', async (t) => {
  const output = memoryOutput({ window: 2 });
  output.hold();
  const { task, input } = await startTask(t, { output });
  for (let i = 0; i < 4; i++) push(input, {});
  await sleep(10);
  t.is(task.processed, 2);
  t.is(output.outstanding, 2);
  output.release();
  await input.idle();
  t.is(task.processed, 4);
});

test('a rejected flush fails the task: done rejects with the rejection and nothing is sealed past the rejected outputs', async (t) => {
  const output = memoryOutput();
  output.hold();
  const spy = spyBackend(createMemoryBackend());
  const { task, input } = await startTask(t, { backend: spy.backend, output, commitEveryRecords: 1 });
  push(input, {});
  await input.idle();
  const rejected = new Error('JetStream rejected the publish');
  output.fail(rejected);
  t.is(await t.throwsAsync(task.done), rejected);
  t.is(task.state, 'failed');
  t.is(spy.writes.length, 0);
  t.is(spy.backend.getSync(POSITION), undefined);
});

test('a publisher failure while the output window is full fails the task; no further record is processed', async (t) => {
  const output = memoryOutput({ window: 2 });
  output.hold();
  const { task, input } = await startTask(t, { output });
  for (let i = 0; i < 3; i++) push(input, {});
  await until(() => output.outstanding === 2);
  const rejected = new Error('JetStream rejected the publish');
  output.fail(rejected);
  t.is(await t.throwsAsync(task.done), rejected);
  t.is(task.state, 'failed');
  t.is(task.processed, 2);
});

// State must not run ahead of its outputs (decision 001, step 2): a sealed position says the records are done,
// so outputs JetStream never stored would never be published again after a crash.
test('a seal reaches the backend only after JetStream acknowledged the outputs published before it', async (t) => {
  const output = memoryOutput();
  output.hold();
  const outstandingAtWrite: number[] = [];
  const spy = spyBackend(createMemoryBackend(), () => outstandingAtWrite.push(output.outstanding));
  const { input } = await startTask(t, { backend: spy.backend, output, commitEveryRecords: 2 });
  push(input, {});
  push(input, {});
  await input.idle();
  await sleep(10);
  t.is(spy.writes.length, 0, 'no batch while the outputs wait for their PubAcks');
  output.release();
  await until(() => spy.writes.length === 1);
  t.deepEqual(spy.positions(), [2]);
  t.deepEqual(outstandingAtWrite, [0], 'no output was outstanding when the batch was written');
});

test('a processing-time timer fires when the clock reaches it, under id <task>:t:<ts>:<key>:0', async (t) => {
  const clock = manualClock(1000);
  const { input, output } = await startTask(t, { now: clock.now });
  push(input, { timerIn: 10 }, 'a');
  await input.idle();
  await sleep(20);
  t.deepEqual(ids(output), [`${TASK}:1:0`], 'not due before the clock moves');
  clock.advance(10);
  await until(() => output.published.length === 2);
  t.deepEqual([output.published[1]!.msgId, decodeMsgpack(output.published[1]!.data)], [`${TASK}:t:1010:a:0`, { key: 'a', timer: 1010 }]);
});

test('a timer sealed by one task fires in the task restarted from its backend, and firing it deletes it from the backend', async (t) => {
  const backend = createMemoryBackend();
  const input = memoryInput();
  const clock = manualClock(1000);
  const first = await startTask(t, { backend, input, now: clock.now });
  push(input, { timerIn: 10 }, 'a');
  await input.idle();
  await first.task.stop();
  t.is(await storedTimerCount(backend), 1);
  t.deepEqual(ids(first.output), [`${TASK}:1:0`]);

  clock.advance(10);
  const second = await startTask(t, { backend, input, now: clock.now });
  await until(() => second.output.published.length === 1);
  t.deepEqual(ids(second.output), [`${TASK}:t:1010:a:0`]);
  await second.task.stop();
  t.is(await storedTimerCount(backend), 0);
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
