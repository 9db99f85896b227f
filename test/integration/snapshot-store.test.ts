/**
 * Snapshots in the JetStream object store of a real nats-server: a full
 * snapshot plus deltas restore to exactly the state of the source backend,
 * deletes included, and collection removes only what no one keeps.
 */
import test from 'ava';
import pino from 'pino';
import { SnapshotStore, snapshotName } from '../../cluster/checkpoint/snapshot-store.js';
import { WorkerBlobTransfer } from '../../cluster/checkpoint/snapshot-transfer.js';
import { ErrorCodes } from '../../errors.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import { natsForFile } from '../helpers/nats.js';
import { dump, hex } from '../helpers/backend-dump.js';

const server = natsForFile(test);

const bytes = (s: string) => new TextEncoder().encode(s);
const quiet = pino({ level: 'silent' });

test('a full snapshot and its deltas restore exactly the source state, deletes included', async (t) => {
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket: server.nats.unique('snap') });
  const source = createMemoryBackend();
  const task = 'j/s0/0';
  const epochs: BackendWrite[][] = [
    Array.from({ length: 500 }, (_, i) => ({ key: bytes(`k${i}`), value: bytes(`v${i}`) })),
    [{ key: bytes('k1'), value: bytes('changed') }, { key: bytes('k2'), value: undefined }, { key: bytes('new'), value: bytes('n') }],
    [{ key: bytes('new'), value: undefined }, { key: bytes('k3'), value: new Uint8Array([0, 255, 0]) }],
  ];
  const chain: string[] = [];
  for (const [i, writes] of epochs.entries()) {
    await source.write(writes);
    chain.push(await store.put({ job: 'j', task, checkpoint: i + 1, generation: 1, kind: i === 0 ? 'full' : 'delta' }, writes));
  }
  const restored = createMemoryBackend();
  await store.restore(chain, restored);
  t.deepEqual(await dump(restored), await dump(source));
  t.is(Object.keys(await dump(restored)).length, 499);
});

test('a chain that does not start with a full snapshot, or names a missing one, is refused', async (t) => {
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket: server.nats.unique('snap') });
  const delta = await store.put({ job: 'j', task: 'j/s0/1', checkpoint: 2, generation: 1, kind: 'delta' }, []);
  await t.throwsAsync(store.restore([delta], createMemoryBackend()), { code: ErrorCodes.STATE_CORRUPTED });
  const missing = snapshotName({ job: 'j', task: 'j/s0/1', checkpoint: 1, generation: 1, kind: 'full' });
  await t.throwsAsync(store.restore([missing], createMemoryBackend()), { code: ErrorCodes.STATE_CORRUPTED });
});

test('collection deletes a task\'s snapshots that no retained checkpoint keeps and that come before its newest chain, and nothing of other tasks', async (t) => {
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket: server.nats.unique('snap') });
  const names: string[] = [];
  for (let c = 1; c <= 4; c++) names.push(await store.put({ job: 'j', task: 'j/s0/0', checkpoint: c, generation: 1, kind: c === 3 ? 'full' : 'delta' }, []));
  const other = await store.put({ job: 'j', task: 'j/s0/10', checkpoint: 1, generation: 1, kind: 'full' }, []);
  // Uploaded for a checkpoint still in progress: newer than anything kept, so not collected.
  const inProgress = await store.put({ job: 'j', task: 'j/s0/0', checkpoint: 5, generation: 1, kind: 'delta' }, []);
  // Background compaction: a full snapshot of checkpoint 4, not named by any checkpoint yet.
  const compacted = await store.put({ job: 'j', task: 'j/s0/0', checkpoint: 4, generation: 1, kind: 'full' }, []);
  t.is(await store.collect(new Map([['j/s0/0', { names: new Set(names.slice(2)), base: names[2]! }]])), 2);
  await t.notThrowsAsync(store.read(compacted));
  await t.notThrowsAsync(store.read(inProgress));
  await t.notThrowsAsync(store.read(other));
  await t.notThrowsAsync(store.read(names[3]!));
  await t.throwsAsync(store.read(names[0]!), { code: ErrorCodes.STATE_CORRUPTED });
});

test('one collection serves several tasks and leaves no tombstone of a deleted snapshot in the bucket', async (t) => {
  const bucket = server.nats.unique('snap');
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket });
  const byTask = new Map<string, string[]>();
  for (const task of ['j/s0/0', 'j/s1/0', 'j/s1/1']) {
    const names: string[] = [];
    for (let c = 1; c <= 3; c++) names.push(await store.put({ job: 'j', task, checkpoint: c, generation: 1, kind: 'full' }, []));
    byTask.set(task, names);
  }
  const keep = new Map([...byTask].filter(([task]) => task !== 'j/s1/1').map(([task, names]) => [task, { names: new Set(names.slice(2)), base: names[2]! }]));
  t.is(await store.collect(keep), 4);

  const live = [...byTask.get('j/s0/0')!.slice(2), ...byTask.get('j/s1/0')!.slice(2), ...byTask.get('j/s1/1')!];
  for (const name of live) await t.notThrowsAsync(store.read(name));
  const jsm = await server.nc.jetstreamManager();
  const { state } = await jsm.streams.info(`OBJ_${bucket}`, { subjects_filter: `$O.${bucket}.M.>` });
  t.is(Object.keys(state.subjects ?? {}).length, live.length, 'one metadata subject per live snapshot, none for deleted ones');
});

test('snapshots moved by the transfer worker thread read back exactly as those moved on this thread, both ways', async (t) => {
  const bucket = server.nats.unique('snap');
  const transfer = new WorkerBlobTransfer({ servers: [server.nats.url], name: 'test-transfer', bucket, logger: quiet });
  t.teardown(() => transfer.close());
  const viaWorker = await SnapshotStore.open(server.nc.jetstream(), { bucket, transfer });
  const inProcess = await SnapshotStore.open(server.nc.jetstream(), { bucket });
  // Larger than one 128 KiB object-store chunk, and several uploads at once, as a node's tasks do.
  const writes = (task: number): BackendWrite[] =>
    Array.from({ length: 20_000 }, (_, i) => ({ key: bytes(`t${task}-k${i}`), value: i % 7 === 0 ? undefined : bytes(`v${i}`.repeat(3)) }));
  const names = await Promise.all([0, 1, 2, 3].map((task) => viaWorker.put({ job: 'j', task: `j/s0/${task}`, checkpoint: 1, generation: 1, kind: 'full' }, writes(task))));
  const plain = (ws: readonly BackendWrite[]) => ws.map((w) => [hex(w.key), w.value && hex(w.value)]);
  for (const [task, name] of names.entries()) {
    t.deepEqual(plain(await inProcess.read(name)), plain(writes(task)), `${name} put by the worker, read here`);
    t.deepEqual(plain(await viaWorker.read(name)), plain(writes(task)), `${name} put and read by the worker`);
  }
  const here = await inProcess.put({ job: 'j', task: 'j/s0/9', checkpoint: 1, generation: 1, kind: 'full' }, writes(9));
  t.deepEqual(plain(await viaWorker.read(here)), plain(writes(9)), 'put here, read by the worker');
  const missing = snapshotName({ job: 'j', task: 'j/s0/8', checkpoint: 1, generation: 1, kind: 'full' });
  await t.throwsAsync(viaWorker.read(missing), { code: ErrorCodes.STATE_CORRUPTED });
});

test('a transfer worker that cannot reach NATS fails puts and reads with MR_JETSTREAM naming the snapshot; the node thread goes on', async (t) => {
  const bucket = server.nats.unique('snap');
  const transfer = new WorkerBlobTransfer({ servers: ['nats://127.0.0.1:1'], name: 'test-transfer', bucket, logger: quiet });
  t.teardown(() => transfer.close());
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket, transfer });
  const error = await t.throwsAsync(store.put({ job: 'j', task: 'j/s0/0', checkpoint: 1, generation: 1, kind: 'full' }, []), { code: ErrorCodes.JETSTREAM });
  t.regex(error!.message, /j\/s0\/0/);
  // A later request starts a new worker, which fails the same way: none is left hanging.
  await t.throwsAsync(store.put({ job: 'j', task: 'j/s0/0', checkpoint: 2, generation: 1, kind: 'full' }, []), { code: ErrorCodes.JETSTREAM });
  await t.throwsAsync(store.read(snapshotName({ job: 'j', task: 'j/s0/0', checkpoint: 1, generation: 1, kind: 'full' })), { code: ErrorCodes.JETSTREAM });
});

test('closing the transfer lets the puts in flight finish; a request after close is refused with MR_NODE_STOPPED', async (t) => {
  const bucket = server.nats.unique('snap');
  const transfer = new WorkerBlobTransfer({ servers: [server.nats.url], name: 'test-transfer', bucket, logger: quiet });
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket, transfer });
  const writes = Array.from({ length: 50_000 }, (_, i) => ({ key: bytes(`k${i}`), value: bytes(`value-${i}`) }));
  const first = await store.put({ job: 'j', task: 'j/s0/0', checkpoint: 1, generation: 1, kind: 'full' }, []);
  const inFlight = store.put({ job: 'j', task: 'j/s0/0', checkpoint: 2, generation: 1, kind: 'full' }, writes);
  await transfer.close();
  const name = await inFlight;
  const reader = await SnapshotStore.open(server.nc.jetstream(), { bucket });
  t.is((await reader.read(name)).length, writes.length);
  t.deepEqual(await reader.read(first), []);
  await t.throwsAsync(store.read(first), { code: ErrorCodes.NODE_STOPPED });
  await t.throwsAsync(store.put({ job: 'j', task: 'j/s0/0', checkpoint: 3, generation: 1, kind: 'full' }, []), { code: ErrorCodes.NODE_STOPPED });
});

test('once a chain starts from a compacted full snapshot, collection removes the delta of that checkpoint and everything before it that nothing names', async (t) => {
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket: server.nats.unique('snap') });
  const task = 'j/s0/0';
  const put = (checkpoint: number, kind: 'full' | 'delta') => store.put({ job: 'j', task, checkpoint, generation: 1, kind }, []);
  const full1 = await put(1, 'full');
  const deltas = [await put(2, 'delta'), await put(3, 'delta')];
  const full3 = await put(3, 'full');
  const delta4 = await put(4, 'delta');
  // An older retained checkpoint still needs [full1, delta2]; the newest is [full3, delta4].
  t.is(await store.collect(new Map([[task, { names: new Set([full1, deltas[0]!, full3, delta4]), base: full3 }]])), 1);
  await t.throwsAsync(store.read(deltas[1]!), { code: ErrorCodes.STATE_CORRUPTED });
  for (const name of [full1, deltas[0]!, full3, delta4]) await t.notThrowsAsync(store.read(name));
  // The older checkpoint is no longer retained.
  t.is(await store.collect(new Map([[task, { names: new Set([full3, delta4]), base: full3 }]])), 2);
  for (const name of [full3, delta4]) await t.notThrowsAsync(store.read(name));
});
