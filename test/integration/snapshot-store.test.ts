/**
 * Snapshots in the JetStream object store of a real nats-server: a full
 * snapshot plus deltas restore to exactly the state of the source backend,
 * deletes included, and collection removes only what no one keeps.
 */
import test from 'ava';
import pino from 'pino';
import { SnapshotStore, snapshotName } from '../../cluster/checkpoint/snapshot-store.js';
import { WorkerUploader } from '../../cluster/checkpoint/snapshot-uploader.js';
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

test('collection deletes a task\'s snapshots that no retained checkpoint keeps, and nothing of other tasks', async (t) => {
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket: server.nats.unique('snap') });
  const names: string[] = [];
  for (let c = 1; c <= 4; c++) names.push(await store.put({ job: 'j', task: 'j/s0/0', checkpoint: c, generation: 1, kind: c === 3 ? 'full' : 'delta' }, []));
  const other = await store.put({ job: 'j', task: 'j/s0/10', checkpoint: 1, generation: 1, kind: 'full' }, []);
  // Uploaded for a checkpoint still in progress: newer than anything kept, so not collected.
  const inProgress = await store.put({ job: 'j', task: 'j/s0/0', checkpoint: 5, generation: 1, kind: 'delta' }, []);
  t.is(await store.collect(new Map([['j/s0/0', new Set(names.slice(2))]])), 2);
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
  const keep = new Map([...byTask].filter(([task]) => task !== 'j/s1/1').map(([task, names]) => [task, new Set(names.slice(2))]));
  t.is(await store.collect(keep), 4);

  const live = [...byTask.get('j/s0/0')!.slice(2), ...byTask.get('j/s1/0')!.slice(2), ...byTask.get('j/s1/1')!];
  for (const name of live) await t.notThrowsAsync(store.read(name));
  const jsm = await server.nc.jetstreamManager();
  const { state } = await jsm.streams.info(`OBJ_${bucket}`, { subjects_filter: `$O.${bucket}.M.>` });
  t.is(Object.keys(state.subjects ?? {}).length, live.length, 'one metadata subject per live snapshot, none for deleted ones');
});

test('snapshots put from the upload worker thread restore exactly like those put on this thread', async (t) => {
  const bucket = server.nats.unique('snap');
  const uploader = new WorkerUploader({ servers: [server.nats.url], name: 'test-uploader', bucket, logger: quiet });
  t.teardown(() => uploader.close());
  const viaWorker = await SnapshotStore.open(server.nc.jetstream(), { bucket, uploader });
  const inProcess = await SnapshotStore.open(server.nc.jetstream(), { bucket });
  // Larger than one 128 KiB object-store chunk, and several uploads at once, as a node's tasks do.
  const writes = (task: number): BackendWrite[] =>
    Array.from({ length: 20_000 }, (_, i) => ({ key: bytes(`t${task}-k${i}`), value: i % 7 === 0 ? undefined : bytes(`v${i}`.repeat(3)) }));
  const names = await Promise.all([0, 1, 2, 3].map((task) => viaWorker.put({ job: 'j', task: `j/s0/${task}`, checkpoint: 1, generation: 1, kind: 'full' }, writes(task))));
  for (const [task, name] of names.entries()) {
    const read = await inProcess.read(name);
    t.deepEqual(read.map((w) => [hex(w.key), w.value && hex(w.value)]), writes(task).map((w) => [hex(w.key), w.value && hex(w.value)]));
  }
});

test('an upload worker that cannot reach NATS fails the put with MR_JETSTREAM naming the snapshot; the node thread goes on', async (t) => {
  const bucket = server.nats.unique('snap');
  const uploader = new WorkerUploader({ servers: ['nats://127.0.0.1:1'], name: 'test-uploader', bucket, logger: quiet });
  t.teardown(() => uploader.close());
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket, uploader });
  const error = await t.throwsAsync(store.put({ job: 'j', task: 'j/s0/0', checkpoint: 1, generation: 1, kind: 'full' }, []), { code: ErrorCodes.JETSTREAM });
  t.regex(error!.message, /j\/s0\/0/);
  // A later put starts a new worker, which fails the same way: no put is left hanging.
  await t.throwsAsync(store.put({ job: 'j', task: 'j/s0/0', checkpoint: 2, generation: 1, kind: 'full' }, []), { code: ErrorCodes.JETSTREAM });
});

test('closing the uploader lets the puts in flight finish; a put after close is refused with MR_NODE_STOPPED', async (t) => {
  const bucket = server.nats.unique('snap');
  const uploader = new WorkerUploader({ servers: [server.nats.url], name: 'test-uploader', bucket, logger: quiet });
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket, uploader });
  const writes = Array.from({ length: 50_000 }, (_, i) => ({ key: bytes(`k${i}`), value: bytes(`value-${i}`) }));
  const first = await store.put({ job: 'j', task: 'j/s0/0', checkpoint: 1, generation: 1, kind: 'full' }, []);
  const inFlight = store.put({ job: 'j', task: 'j/s0/0', checkpoint: 2, generation: 1, kind: 'full' }, writes);
  await uploader.close();
  const name = await inFlight;
  t.is((await store.read(name)).length, writes.length);
  t.deepEqual(await store.read(first), []);
  await t.throwsAsync(store.put({ job: 'j', task: 'j/s0/0', checkpoint: 3, generation: 1, kind: 'full' }, []), { code: ErrorCodes.NODE_STOPPED });
});
