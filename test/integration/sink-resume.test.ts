/**
 * A transactional sink that publishes a committed checkpoint's outputs again
 * after its first attempt stopped part way must not store copies, also once
 * the stream's duplicate window has passed (JetStream then forgets ids). It
 * looks up which of its ids the stream holds (cluster/transport/stored-ids.ts)
 * and publishes only the others. A real nats-server; streams with a 500 ms
 * duplicate window so the test need not wait two minutes.
 */
import test from 'ava';
import { headers as natsHeaders } from 'nats';
import pino from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { natsTaskOutput } from '../../cluster/task-output.js';
import { StoredIdLookup } from '../../cluster/transport/stored-ids.js';
import { job, keyed, sink, source, value } from '../../index.js';
import { compileJob } from '../../runtime/plan/compile.js';
import type { StateBackend } from '../../runtime/state/backend.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import type { TaskOutput } from '../../runtime/task/ports.js';
import { Task } from '../../runtime/task/task.js';
import { encodeMsgpack } from '../../runtime/wire/codec.js';
import { MSG_ID_HEADER } from '../../runtime/wire/headers.js';
import { memoryInput, type MemoryInput } from '../../testing.js';
import { readStream } from '../chaos/stream-reader.js';
import { natsForFile, waitFor } from '../helpers/nats.js';

const server = natsForFile(test);
const WINDOW_MS = 500;
const NS = 1_000_000;

const Counter = keyed({
  name: 'counter',
  state: { n: value({ default: 0 }) },
  onRecord(_order: unknown, ctx) {
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    return { key: ctx.key, n };
  },
});

async function outputStream(name: string, windowMs: number): Promise<string> {
  const jsm = await server.nc.jetstreamManager();
  await jsm.streams.add({ name, subjects: [`mr.${name}.>`], duplicate_window: windowMs * NS });
  return name;
}

/** Stored message ids of `stream`, in stream order. */
async function storedIdList(stream: string): Promise<string[]> {
  const ids: string[] = [];
  await readStream(server.nc, stream, (m) => ids.push(m.headers?.get(MSG_ID_HEADER) ?? ''));
  return ids;
}

function sinkTask(name: string, backend: StateBackend, input: MemoryInput, output: TaskOutput): Task {
  const stage = compileJob(job(name).from(source.stream(`${name}-in`)).process(Counter).to(sink.stream(name))).stages[0]!;
  return new Task({
    job: name,
    stage,
    partition: 0,
    inputStream: `${name}-in`,
    outputPartitions: 1,
    backend,
    openInput: input.open,
    output,
    logger: pino({ level: 'silent' }),
    checkpointing: { generation: 1, upstream: [], sealed: async () => undefined },
  });
}

test('after the duplicate window, a restarted sink publishes only the staged outputs its crashed run did not store', async (t) => {
  const name = server.nats.unique('out');
  await outputStream(name, WINDOW_MS);
  const js = server.nc.jetstream();
  const jsm = await server.nc.jetstreamManager();
  const backend = createMemoryBackend();
  const input = memoryInput();
  for (let i = 0; i < 3; i++) input.push({ data: encodeMsgpack({}), headers: { 'Mr-Key': `k${i}`, 'Mr-Ts': '1000' } });

  // Run 1 seals checkpoint 1 with three staged outputs; the commit comes, and it dies after storing two of them.
  const first = sinkTask(name, backend, input, natsTaskOutput(server.nc, 10));
  await first.start();
  await input.idle();
  first.triggerCheckpoint(1);
  await waitFor(() => first.committedCheckpoint === 1, { message: 'checkpoint 1 was not sealed' });
  await first.stop();
  const task = `${name}/s0/0`;
  for (const i of [0, 1]) {
    const h = natsHeaders();
    h.set(MSG_ID_HEADER, `${task}:c1:${i}`);
    await js.publish(`mr.${name}.0`, encodeMsgpack({ key: `k${i}`, n: 1 }), { headers: h, msgID: `${task}:c1:${i}` });
  }
  await sleep(WINDOW_MS * 2);

  // Run 2 starts from the same backend: checkpoint 1 is the committed one, its staged outputs go out.
  const lookup = new StoredIdLookup(js, jsm);
  const output = natsTaskOutput(server.nc, 10, undefined, (query) => lookup.storedIds(query));
  const second = sinkTask(name, backend, input, output);
  await second.start();
  await output.flushed(output.mark());
  await second.stop();
  t.deepEqual(await storedIdList(name), [`${task}:c1:0`, `${task}:c1:1`, `${task}:c1:2`]);
});

test('the window is what the lookup saves: past it the server stores a repeated id again, within it the lookup reads nothing', async (t) => {
  const short = await outputStream(server.nats.unique('short'), WINDOW_MS);
  const long = await outputStream(server.nats.unique('long'), 120_000);
  const js = server.nc.jetstream();
  const jsm = await server.nc.jetstreamManager();
  const since = Date.now() - 1000;
  for (const stream of [short, long]) {
    await js.publish(`mr.${stream}.0`, new Uint8Array(0), { msgID: 'a:c1:0' });
    await js.publish(`mr.${stream}.0`, new Uint8Array(0), { msgID: 'b:c1:0' });
  }
  await sleep(WINDOW_MS * 2);
  await js.publish(`mr.${short}.0`, new Uint8Array(0), { msgID: 'a:c1:0' });
  t.deepEqual(await storedIdList(short), ['a:c1:0', 'b:c1:0', 'a:c1:0'], 'a repeated id past the window is stored again');

  const lookup = new StoredIdLookup(js, jsm);
  const query = (stream: string) => ({ subjects: [`mr.${stream}.0`, `mr.${stream}.9`], prefix: 'a:', since });
  t.deepEqual([...(await lookup.storedIds(query(short)))], ['a:c1:0'], 'past the window: the ids read back, of this prefix only');
  t.deepEqual([...(await lookup.storedIds(query(long)))], [], 'within the window nothing is read: the server deduplicates');
  t.deepEqual([...(await lookup.storedIds({ ...query(short), since: Date.now() + 1000 }))], [], 'nothing stored since `since`');
  t.deepEqual([...(await lookup.storedIds({ subjects: ['nowhere.0'], prefix: 'a:', since }))], [], 'a subject no stream holds');
});

test('the streams of subjects and their duplicate windows are read once for all the tasks that ask at the same time', async (t) => {
  const stream = await outputStream(server.nats.unique('shared'), 120_000);
  const jsm = await server.nc.jetstreamManager();
  const calls = { find: 0, info: 0 };
  const counting = {
    ...jsm,
    streams: Object.assign(Object.create(jsm.streams) as typeof jsm.streams, {
      find: (subject: string) => (calls.find++, jsm.streams.find(subject)),
      info: (name: string) => (calls.info++, jsm.streams.info(name)),
    }),
  } as typeof jsm;
  const lookup = new StoredIdLookup(server.nc.jetstream(), counting);
  const subjects = [0, 1, 2].map((p) => `mr.${stream}.${p}`);
  await Promise.all(Array.from({ length: 6 }, (_, task) => lookup.storedIds({ subjects, prefix: `t${task}:`, since: Date.now() - 1000 })));
  t.deepEqual(calls, { find: 3, info: 1 }, 'one find per subject and one info per stream, for six tasks');
});
