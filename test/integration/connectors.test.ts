/**
 * Connectors against a real nats-server: the producer client into a millrace
 * stream, JSON and msgpack from plain JetStream streams, JetStream sinks in
 * both formats, and stream administration. Nodes run in this process here;
 * node-*.test.ts run them as real processes.
 */
import test from 'ava';
import { pack, unpack } from 'msgpackr';
import { connect as natsConnect, type NatsConnection } from 'nats';
import { connect, ErrorCodes, job, keyed, partitionOf, sink, source, startNode, value, type MillraceNode, type StartNodeOptions } from '../../index.js';
import { setupNats, tempDir, waitFor, type NatsFixture } from '../helpers/nats.js';

let nats: NatsFixture;
let nc: NatsConnection;
const nodes: MillraceNode[] = [];
const dirs: { cleanup(): Promise<void> }[] = [];

test.before(async () => {
  nats = await setupNats();
  nc = await natsConnect({ servers: nats.url });
});
test.after.always(async () => {
  for (const n of nodes) await n.stop();
  for (const d of dirs) await d.cleanup();
  await nc?.close();
  await nats?.cleanup();
});

async function node(jobs: StartNodeOptions['jobs']): Promise<MillraceNode> {
  const dir = await tempDir('millrace-connectors-');
  dirs.push(dir);
  // Each node its own id: two live nodes may not share one (their membership entries would overwrite each other).
  const n = await startNode({ nats: { servers: [nats.url] }, dataDir: dir.path, nodeId: nats.unique('node'), logLevel: 'silent' }, { jobs });
  nodes.push(n);
  return n;
}

/** Reads every message of `stream` once. */
async function readAll(stream: string): Promise<{ subject: string; data: Uint8Array }[]> {
  const jsm = await nc.jetstreamManager();
  const total = (await jsm.streams.info(stream)).state.messages;
  const out: { subject: string; data: Uint8Array }[] = [];
  if (total === 0) return out;
  const messages = await (await nc.jetstream().consumers.get(stream)).consume();
  for await (const m of messages) {
    out.push({ subject: m.subject, data: m.data });
    if (out.length === total) break;
  }
  return out;
}

const Count = keyed({
  name: 'count',
  state: { n: value<number>({ default: 0 }) },
  onRecord(_v: unknown, ctx) {
    const n = ctx.state.n.get() + 1;
    ctx.state.n.set(n);
    return { key: ctx.key, n };
  },
});

test.serial('produced records land on their key\'s partition, and a job writes JSON to a JetStream sink', async (t) => {
  const input = nats.unique('orders');
  const out = nats.unique('COUNTS');
  const client = await connect({ servers: nats.url });
  t.teardown(() => client.close());
  await client.streams.create(input, { partitions: 4 });
  await (await nc.jetstreamManager()).streams.add({ name: out, subjects: [`${out}.>`] });

  const reference = new Map<string, number>();
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 1000; i++) {
    const key = `k${(i * 7919) % 50}`;
    reference.set(key, (reference.get(key) ?? 0) + 1);
    sends.push(client.produce(input, key, { i }));
  }
  await Promise.all(sends);
  for (const m of await readAll(input)) {
    const { i } = unpack(m.data) as { i: number };
    t.is(m.subject, `mr.${input}.${partitionOf(`k${(i * 7919) % 50}`, 4)}`);
  }

  await node([job('json-sink').from(source.stream(input)).process(Count).to(sink.jetstream({ subject: (_v, key) => `${out}.${key}`, format: 'json' }))]);
  await waitFor(async () => (await (await nc.jetstreamManager()).streams.info(out)).state.messages >= 1000, { message: 'JSON outputs' });
  const finals = new Map<string, number>();
  for (const m of await readAll(out)) {
    const v = JSON.parse(new TextDecoder().decode(m.data)) as { key: string; n: number };
    t.is(m.subject, `${out}.${v.key}`);
    finals.set(v.key, Math.max(finals.get(v.key) ?? 0, v.n));
  }
  const sorted = (m: Map<string, number>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
  t.deepEqual(sorted(finals), sorted(reference));
});

test.serial('a job reads msgpack from a plain JetStream stream and writes msgpack to one subject', async (t) => {
  const input = nats.unique('RAW');
  const out = nats.unique('OUT');
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: input, subjects: [`${input}.>`] });
  await jsm.streams.add({ name: out, subjects: [`${out}.all`] });
  const js = nc.jetstream();
  for (let i = 0; i < 300; i++) await js.publish(`${input}.${i % 3}`, pack({ user: `u${i % 10}`, amount: i }));

  await node([
    job('msgpack-io')
      .from(source.jetstream<{ user: string; amount: number }>({ stream: input, subjects: [`${input}.0`, `${input}.1`, `${input}.2`], format: 'msgpack', key: (e) => e.user }))
      .filter((e) => e.amount % 2 === 0)
      .map((e) => ({ user: e.user, doubled: e.amount * 2 }))
      .to(sink.jetstream({ subject: `${out}.all`, format: 'msgpack' })),
  ]);
  await waitFor(async () => (await jsm.streams.info(out)).state.messages >= 150, { message: 'msgpack outputs' });
  const got = (await readAll(out)).map((m) => unpack(m.data) as { user: string; doubled: number });
  const want = Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 2 === 0).map((i) => ({ user: `u${i % 10}`, doubled: i * 2 }));
  const order = (a: { doubled: number }, b: { doubled: number }) => a.doubled - b.doubled;
  t.deepEqual(got.sort(order), want.sort(order));
});

test.serial('streams are created, described and deleted; conflicts and foreign streams are refused by code', async (t) => {
  const client = await connect({ servers: nats.url });
  t.teardown(() => client.close());
  const name = nats.unique('admin');
  const created = await client.streams.create(name, { partitions: 3 });
  t.like(created, { name, partitions: 3, messages: 0 });
  t.like(await client.streams.describe(name), { partitions: 3 });
  await t.throwsAsync(client.streams.create(name, { partitions: 5 }), { code: ErrorCodes.STREAM_CONFLICT });
  const foreign = nats.unique('FOREIGN');
  await (await nc.jetstreamManager()).streams.add({ name: foreign, subjects: [`${foreign}.>`] });
  await t.throwsAsync(client.streams.describe(foreign), { code: ErrorCodes.STREAM_NOT_PARTITIONED });
  await t.throwsAsync(client.produce(nats.unique('missing'), 'k', 1), { code: ErrorCodes.STREAM_NOT_FOUND });
  t.true(await client.streams.delete(name));
  t.is(await client.streams.describe(name), undefined);
  t.false(await client.streams.delete(name));
});
