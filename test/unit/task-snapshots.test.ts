/**
 * Which snapshot a sealed checkpoint uploads: a full one first, deltas after
 * it, a full one in the background every `fullEvery` checkpoints that the
 * chain starts from once it is stored, and a full one again after an upload
 * failed (the failed delta's writes would be missing from the chain).
 */
import test from 'ava';
import type { SnapshotRef, SnapshotStore } from '../../cluster/checkpoint/snapshot-store.js';
import { snapshotName } from '../../cluster/checkpoint/snapshot-store.js';
import { TaskSnapshots } from '../../cluster/checkpoint/task-snapshots.js';
import type { BackendWrite } from '../../runtime/state/backend.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import type { SealedCheckpoint } from '../../runtime/task/task.js';

/** A store that records what it is given and fails the puts it is told to. */
function recordingStore(failAt: ReadonlySet<number>) {
  const puts: { ref: SnapshotRef; writes: number }[] = [];
  const store = {
    async put(ref: SnapshotRef, writes: readonly BackendWrite[]) {
      if (failAt.has(ref.checkpoint)) throw new Error(`upload of ${ref.checkpoint} failed`);
      puts.push({ ref, writes: writes.length });
      return snapshotName(ref);
    },
  } as unknown as SnapshotStore;
  return { store, puts };
}

const key = (s: string) => new TextEncoder().encode(s);

test('the chain is a full snapshot then deltas; every fullEvery checkpoints a full snapshot taken in the background starts it again', async (t) => {
  const { store, puts } = recordingStore(new Set());
  const backend = createMemoryBackend();
  await backend.write([{ key: key('p/a'), value: key('1') }]);
  const uploads = new TaskSnapshots(store, backend, 'j', 3, []);
  const chains: string[][] = [];
  for (let c = 1; c <= 6; c++) {
    chains.push(await uploads.upload(sealed(c)));
    await uploads.compactIfDue(sealed(c));
    await uploads.compacted();
  }
  const short = (chain: string[]) => chain.map((n) => n.slice(n.lastIndexOf('/') + 1));
  t.deepEqual(puts.map((p) => `${p.ref.checkpoint}-${p.ref.kind}`), ['1-full', '2-delta', '3-delta', '3-full', '4-delta', '5-delta', '5-full', '6-delta']);
  t.deepEqual(short(chains[2]!), ['000000000001-g2-full', '000000000002-g2-delta', '000000000003-g2-delta'], 'checkpoint 3 itself is a delta: the full one is not on its path');
  t.deepEqual(short(chains[3]!), ['000000000003-g2-full', '000000000004-g2-delta']);
  t.deepEqual(short(chains[4]!), ['000000000003-g2-full', '000000000004-g2-delta', '000000000005-g2-delta'], 'a chain never grows past fullEvery + 1');
  t.deepEqual(short(chains[5]!), ['000000000005-g2-full', '000000000006-g2-delta']);
  t.is(puts[3]!.writes, 1, 'the background full snapshot copies every key under the prefixes');
});

test('a restored chain of fullEvery snapshots or more goes on with a delta; the full snapshot follows in the background', async (t) => {
  const { store, puts } = recordingStore(new Set());
  const restored = [1, 2, 3, 4].map((c) => snapshotName({ job: 'j', task: 'j/s0/0', checkpoint: c, generation: 2, kind: c === 1 ? 'full' : 'delta' }));
  const uploads = new TaskSnapshots(store, createMemoryBackend(), 'j', 3, restored);
  const chain = await uploads.upload(sealed(5));
  t.deepEqual(chain, [...restored, snapshotName({ job: 'j', task: 'j/s0/0', checkpoint: 5, generation: 2, kind: 'delta' })]);
  await uploads.compactIfDue(sealed(5));
  t.deepEqual(puts.map((p) => `${p.ref.checkpoint}-${p.ref.kind}`), ['5-delta', '5-full']);
});

test('a background full snapshot that failed, or that a broken chain no longer leads to, is not adopted', async (t) => {
  const { store, puts } = recordingStore(new Set());
  const failing = new Set<string>();
  const flaky = {
    put: async (ref: SnapshotRef, writes: readonly BackendWrite[]) => {
      if (failing.has(`${ref.checkpoint}-${ref.kind}`)) throw new Error(`upload of ${ref.checkpoint} ${ref.kind} failed`);
      return store.put(ref, writes);
    },
  } as unknown as SnapshotStore;
  const uploads = new TaskSnapshots(flaky, createMemoryBackend(), 'j', 2, []);
  await uploads.upload(sealed(1));
  await uploads.upload(sealed(2));
  failing.add('2-full');
  await uploads.compactIfDue(sealed(2));
  await uploads.compacted();
  const afterFailure = await uploads.upload(sealed(3));
  t.is(afterFailure.length, 3, 'the failed compaction left the chain as it was');
  // A compaction at 3, then the delta of 4 fails: the chain restarts with a full snapshot of 5, and the compaction of 3 must not replace it.
  await uploads.compactIfDue(sealed(3));
  await uploads.compacted();
  failing.add('4-delta');
  await t.throwsAsync(uploads.upload(sealed(4)));
  const chain = await uploads.upload(sealed(5));
  t.deepEqual(chain, [snapshotName({ job: 'j', task: 'j/s0/0', checkpoint: 5, generation: 2, kind: 'full' })]);
  t.deepEqual(puts.map((p) => `${p.ref.checkpoint}-${p.ref.kind}`), ['1-full', '2-delta', '3-delta', '3-full', '5-full']);
});

test('after a failed upload the next one is a full snapshot, and the error reaches the caller', async (t) => {
  const { store, puts } = recordingStore(new Set([2]));
  const backend = createMemoryBackend();
  await backend.write([{ key: key('p/a'), value: key('1') }, { key: key('p/b'), value: key('2') }]);
  const uploads = new TaskSnapshots(store, backend, 'j', 10, []);
  await uploads.upload(sealed(1));
  await t.throwsAsync(uploads.upload(sealed(2)), { message: 'upload of 2 failed' });
  const chain = await uploads.upload(sealed(3));
  t.deepEqual(puts.map((p) => [p.ref.checkpoint, p.ref.kind]), [[1, 'full'], [3, 'full']]);
  t.is(puts[1]!.writes, 2, 'the full snapshot copies every key under the prefixes');
  t.is(chain.length, 1);
});

function sealed(checkpoint: number): SealedCheckpoint {
  return { task: 'j/s0/0', checkpoint, generation: 2, position: checkpoint * 10, resumeAfter: checkpoint * 10, writes: [{ key: key(`p/${checkpoint}`), value: key('x') }], prefixes: [key('p/')] };
}
