/**
 * Which snapshot a sealed checkpoint uploads: a full one first and every
 * `fullEvery` checkpoints, deltas between, and a full one again after an
 * upload failed (the failed delta's writes would be missing from the chain).
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

test('the chain is a full snapshot then deltas, with a new full one every fullEvery checkpoints', async (t) => {
  const { store, puts } = recordingStore(new Set());
  const backend = createMemoryBackend();
  const uploads = new TaskSnapshots(store, backend, 'j', 3, []);
  const chains: string[][] = [];
  for (let c = 1; c <= 5; c++) chains.push(await uploads.upload(sealed(c)));
  t.deepEqual(puts.map((p) => p.ref.kind), ['full', 'delta', 'delta', 'full', 'delta']);
  t.deepEqual(chains[4]!.map((n) => n.slice(n.lastIndexOf('/') + 1)), ['000000000004-g2-full', '000000000005-g2-delta']);
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
  return { task: 'j/s0/0', checkpoint, generation: 2, position: checkpoint * 10, writes: [{ key: key(`p/${checkpoint}`), value: key('x') }], prefixes: [key('p/')] };
}
