/**
 * The pipeline DSL and what it compiles to: stages split at keyBy, internal
 * streams, name checks, the order of fused operators and where a stage's
 * records are routed — run in the real Task over in-memory ports.
 */
import test, { type ExecutionContext } from 'ava';
import pino from 'pino';
import { ErrorCodes } from '../../errors.js';
import { job, keyed, partitionOf, sink, source, value, type JobDefinition, type StreamRecord } from '../../index.js';
import transactionsJob, { UserTotals } from '../../examples/transactions/job.js';
import type { Transaction } from '../../examples/transactions/model.js';
import { compileJob, type StagePlan } from '../../runtime/plan/compile.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import { Task } from '../../runtime/task/task.js';
import { decodeMsgpack, encodeJson, encodeMsgpack } from '../../runtime/wire/codec.js';
import { memoryInput, memoryOutput } from '../../testing.js';

const tx = (userId: string, amount: number, merchant = 'Ikea'): Transaction => ({
  transactionId: `${userId}-${amount}`,
  userId,
  amount,
  merchant,
  timestamp: 1_700_000_000_000,
});

const Count = keyed({
  name: 'count',
  state: { n: value({ default: 0 }) },
  onRecord(_v: unknown, ctx) {
    ctx.state.n.set(ctx.state.n.get() + 1);
    return ctx.state.n.get();
  },
});

/** Runs `stage` of `definition` in a Task over `records`; resolves with what it published. */
async function runStage(t: ExecutionContext, stage: StagePlan, records: { data: Uint8Array; headers?: Record<string, string> }[], outputPartitions = 1) {
  const input = memoryInput();
  const output = memoryOutput();
  const task = new Task({
    job: 'j',
    stage,
    partition: 0,
    inputStream: 'in',
    outputPartitions,
    backend: createMemoryBackend(),
    openInput: input.open,
    output,
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => task.stop());
  await task.start();
  for (const r of records) input.push(r);
  await input.idle();
  return output.published.map((m) => ({ subject: m.subject, key: m.key, msgId: m.msgId, value: decodeMsgpack(m.data) }));
}

test('a job over a millrace stream without keyBy is one stage', (t) => {
  const plan = compileJob(job('j').from(source.stream('in', { partitions: 8 })).process(Count).to(sink.stream('out')));
  t.is(plan.job, 'j');
  t.is(plan.stages.length, 1);
  const [s0] = plan.stages;
  t.is(s0!.id, 's0');
  t.deepEqual(s0!.input, { kind: 'stream', stream: 'in', partitions: 8, internal: false });
  t.deepEqual(s0!.operations.map((o) => [o.kind, o.name]), [['process', 'count']]);
  t.deepEqual(s0!.output, { kind: 'stream', stream: 'out', partitions: undefined, internal: false, rekey: undefined });
});

test('keyBy ends a stage: its records cross the internal stream <job>__s1 to the next', (t) => {
  const plan = compileJob(transactionsJob);
  t.deepEqual(plan.stages.map((s) => s.id), ['s0', 's1']);
  const [s0, s1] = plan.stages;
  t.is(s0!.input.kind, 'jetstream');
  t.deepEqual(s0!.operations.map((o) => o.name), ['filter-small', 'transform', 'enrich', 'classify']);
  t.like(s0!.output, { kind: 'stream', stream: 'transactions__s1', partitions: 4, internal: true });
  t.is(s0!.output.kind === 'stream' ? s0!.output.rekey?.name : undefined, 'keyBy-5');
  t.deepEqual(s1!.input, { kind: 'stream', stream: 'transactions__s1', partitions: 4, internal: true });
  t.deepEqual(s1!.operations.map((o) => o.name), [UserTotals.name]);
  t.deepEqual(s1!.output, { kind: 'stream', stream: 'user-totals', partitions: 4, internal: false, rekey: undefined });
});

test('every keyBy starts a stage, numbered in order', (t) => {
  const plan = compileJob(
    job('two')
      .from(source.jetstream<Transaction>({ stream: 'TX', key: (x) => x.userId }))
      .keyBy((x) => x.merchant, { name: 'by-merchant' })
      .process(Count)
      .keyBy(String, { name: 'by-count', partitions: 2 })
      .to(sink.jetstream({ subject: 'counts' })),
  );
  t.deepEqual(plan.stages.map((s) => [s.id, s.input.kind === 'stream' ? s.input.stream : 'TX', s.operations.length]), [
    ['s0', 'TX', 0],
    ['s1', 'two__s1', 1],
    ['s2', 'two__s2', 0],
  ]);
  t.like(plan.stages[2]!.output, { kind: 'jetstream' });
});

test('duplicate operator names are rejected with MR_JOB_INVALID', (t) => {
  const base = () => job('dup').from(source.stream<Transaction>('in'));
  const jobs: JobDefinition[] = [
    base().map((x) => x, 'same').filter(() => true, 'same').to(sink.stream('out')),
    base().map((x) => x, 'count').process(Count).to(sink.stream('out')),
    base().keyBy((x) => x.merchant, { name: 'step' }).map((x) => x, 'step').to(sink.stream('out')),
  ];
  for (const definition of jobs) t.throws(() => compileJob(definition), { code: ErrorCodes.JOB_INVALID });
});

test('the same keyed operator twice is refused when the job is built, as a TypeError', (t) => {
  // Caught by KeyedStream.process() before compileJob() would report MR_JOB_INVALID.
  t.throws(() => job('dup').from(source.stream('in')).process(Count).process(Count), { instanceOf: TypeError });
});

test('bad names are TypeErrors', (t) => {
  for (const name of ['', 'has space', 'a.b', 'x'.repeat(65)]) t.throws(() => job(name), { instanceOf: TypeError }, `job ${name}`);
  for (const name of ['', 'a/b', 'a:b']) {
    t.throws(() => keyed({ name, state: {}, onRecord: () => undefined }), { instanceOf: TypeError }, `operator ${name}`);
  }
  for (const name of ['a.b', 'a*', 'x>', '']) {
    t.throws(() => source.stream(name), { instanceOf: TypeError }, `source ${name}`);
    t.throws(() => sink.stream(name), { instanceOf: TypeError }, `sink ${name}`);
  }
  t.throws(() => source.jetstream({ stream: 'TX', key: 'userId' as unknown as (v: unknown) => string }), { instanceOf: TypeError });
});

test('filter, map and flatMap run fused, in declaration order, record by record', async (t) => {
  const calls: string[] = [];
  const seen: StreamRecord<unknown>[] = [];
  const definition = job('j')
    .from(source.jetstream<Transaction>({ stream: 'TX', key: (x) => x.userId, timestamp: (x) => x.timestamp }))
    .filter((x) => (calls.push(`filter ${x.amount}`), x.amount >= 100))
    .map((x) => (calls.push(`map ${x.amount}`), x.amount / 100))
    .flatMap((n, record) => (calls.push(`flatMap ${n}`), seen.push(record), [n, -n]))
    .map((n) => (calls.push(`map2 ${n}`), `v${n}`))
    .to(sink.stream('out'));
  const [stage] = compileJob(definition).stages;
  const published = await runStage(t, stage!, [tx('a', 200), tx('b', 50), tx('c', 300)].map((x) => ({ data: encodeJson(x) })));
  t.deepEqual(calls, [
    'filter 200', 'map 200', 'flatMap 2', 'map2 2', 'map2 -2',
    'filter 50',
    'filter 300', 'map 300', 'flatMap 3', 'map2 3', 'map2 -3',
  ]);
  t.deepEqual(published.map((p) => [p.value, p.key, p.msgId]), [
    ['v2', 'a', 'j/s0/0:1:0'],
    ['v-2', 'a', 'j/s0/0:1:1'],
    ['v3', 'c', 'j/s0/0:3:0'],
    ['v-3', 'c', 'j/s0/0:3:1'],
  ]);
  t.deepEqual(seen[0], { value: 2, key: 'a', timestamp: 1_700_000_000_000 }, 'a function taking the record sees key and event time');
});

test('the keyBy re-key routes each record to mr.<internal>.<partitionOf(key, P)> under its new key', async (t) => {
  const P = 4;
  const definition = job('route')
    .from(source.jetstream<Transaction>({ stream: 'TX', key: (x) => x.userId }))
    .keyBy((x) => x.merchant, { partitions: P })
    .process(Count)
    .to(sink.stream('out'));
  const [s0] = compileJob(definition).stages;
  const merchants = ['Ikea', 'Apple', 'Uber', 'Tesla', 'Netflix', 'Amazon', 'BestBuy', 'Starbucks'];
  const txs = merchants.map((m, i) => tx(`user-${i}`, 100 + i, m));
  const published = await runStage(t, s0!, txs.map((x) => ({ data: encodeJson(x) })), P);
  t.deepEqual(
    published.map((p) => [p.subject, p.key]),
    merchants.map((m) => [`mr.route__s1.${partitionOf(m, P)}`, m]),
  );
  t.deepEqual(published.map((p) => p.value), txs, 'the value crosses unchanged, as msgpack');
  t.true(new Set(published.map((p) => p.subject)).size > 1, 'the keys spread over partitions');
});

test('a stage writing a millrace stream routes by record key: mr.<stream>.<partitionOf(key, P)>', async (t) => {
  const [s0] = compileJob(job('j').from(source.stream('in')).process(Count).to(sink.stream('out'))).stages;
  const keys = ['a', 'user-42', 'héllo', ''];
  const published = await runStage(
    t,
    s0!,
    keys.map((k) => ({ data: encodeMsgpack({}), headers: { 'Mr-Key': k, 'Mr-Ts': '5' } })),
    16,
  );
  t.deepEqual(published.map((p) => [p.subject, p.key, p.value]), keys.map((k) => [`mr.out.${partitionOf(k, 16)}`, k, 1]));
});

test('job options: standbyReplicas travels with the definition; a bad count is a TypeError naming the option', (t) => {
  const def = job('with-standby', { standbyReplicas: 1 }).from(source.stream('in')).to(sink.stream('out'));
  t.deepEqual(def.options, { standbyReplicas: 1 });
  t.deepEqual(job('plain').from(source.stream('in')).filter(() => true).to(sink.stream('out')).options, {});
  for (const bad of [-1, 1.5, 5]) t.throws(() => job('x', { standbyReplicas: bad }), { instanceOf: TypeError, message: /standbyReplicas/ });
});
