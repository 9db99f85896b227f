/**
 * The run counter of each job on a real nats-server: generations never
 * repeat, also when several coordinators race, and each run keeps the nodes
 * it was assigned to.
 */
import test from 'ava';
import { RunStore } from '../../cluster/checkpoint/run-store.js';
import { natsForFile } from '../helpers/nats.js';

const server = natsForFile(test);

test('each run gets the next generation and keeps its nodes', async (t) => {
  const runs = await RunStore.open(server.nc.jetstream(), { bucket: server.nats.unique('runs') });
  t.deepEqual(await runs.current('j'), { generation: 0, nodes: [] });
  t.is(await runs.next('j', ['a', 'b']), 1);
  t.is(await runs.next('j', ['b']), 2);
  t.deepEqual(await runs.current('j'), { generation: 2, nodes: ['b'] });
  t.deepEqual(await runs.current('other'), { generation: 0, nodes: [] });
});

test('racing coordinators never get the same generation', async (t) => {
  const bucket = server.nats.unique('runs');
  const stores = await Promise.all([1, 2, 3].map(() => RunStore.open(server.nc.jetstream(), { bucket })));
  const generations = await Promise.all(stores.flatMap((runs, i) => Array.from({ length: 5 }, () => runs.next('j', [`n${i}`]))));
  t.deepEqual([...generations].sort((a, b) => a - b), Array.from({ length: 15 }, (_, i) => i + 1));
});

test('a generation stored as a bare number (before nodes were kept) reads as a run with no nodes', async (t) => {
  const bucket = server.nats.unique('runs');
  const kv = await server.nc.jetstream().views.kv(bucket, { history: 1 });
  await kv.put('j', new TextEncoder().encode('41'));
  const runs = await RunStore.open(server.nc.jetstream(), { bucket });
  t.deepEqual(await runs.current('j'), { generation: 41, nodes: [] });
  t.is(await runs.next('j', ['a']), 42);
});
