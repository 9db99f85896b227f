/**
 * The commit of a checkpoint is the compare-and-set write of its manifest:
 * on a real nats-server, exactly one of two racing commits wins, stale
 * leaders and old checkpoint ids are refused, and the last manifests stay.
 */
import test from 'ava';
import { ManifestStore, type CheckpointManifest } from '../../cluster/checkpoint/manifest-store.js';
import { ErrorCodes } from '../../errors.js';
import { natsForFile } from '../helpers/nats.js';

const server = natsForFile(test);

function manifest(job: string, checkpoint: number, leaderEpoch: number): CheckpointManifest {
  return {
    job,
    checkpoint,
    generation: 1,
    leaderEpoch,
    completedAt: 1_700_000_000_000 + checkpoint,
    tasks: { [`${job}/s0/0`]: { positions: { [`in/0`]: checkpoint * 100 }, snapshots: [`${job}/s0/0/${checkpoint}`] } },
  };
}

test('manifests commit in order and read back', async (t) => {
  const store = await ManifestStore.open(server.nc.jetstream(), { bucket: server.nats.unique('cp') });
  t.is(await store.latest('j'), undefined);
  await store.commit(manifest('j', 1, 7), undefined);
  const first = await store.latest('j');
  t.deepEqual(first?.manifest, manifest('j', 1, 7));
  await store.commit(manifest('j', 2, 7), first);
  t.is((await store.latest('j'))?.manifest.checkpoint, 2);
});

test('of two commits racing from the same previous manifest, exactly one wins', async (t) => {
  const store = await ManifestStore.open(server.nc.jetstream(), { bucket: server.nats.unique('cp') });
  await store.commit(manifest('j', 1, 3), undefined);
  const previous = await store.latest('j');
  const results = await Promise.allSettled([store.commit(manifest('j', 2, 3), previous), store.commit(manifest('j', 2, 4), previous)]);
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  t.is(lost.reason.code, ErrorCodes.CHECKPOINT_CONFLICT);
});

test('a stale leader epoch or an old checkpoint id is refused', async (t) => {
  const store = await ManifestStore.open(server.nc.jetstream(), { bucket: server.nats.unique('cp') });
  await store.commit(manifest('j', 5, 9), undefined);
  const previous = await store.latest('j');
  await t.throwsAsync(store.commit(manifest('j', 6, 8), previous), { code: ErrorCodes.CHECKPOINT_CONFLICT });
  await t.throwsAsync(store.commit(manifest('j', 5, 9), previous), { code: ErrorCodes.CHECKPOINT_CONFLICT });
  t.is((await store.latest('j'))?.manifest.checkpoint, 5);
});

test('the last few manifests per job are retained, oldest first', async (t) => {
  const store = await ManifestStore.open(server.nc.jetstream(), { bucket: server.nats.unique('cp'), retained: 3 });
  let previous;
  for (let c = 1; c <= 5; c++) {
    await store.commit(manifest('j', c, 1), previous);
    previous = await store.latest('j');
  }
  t.deepEqual((await store.retained('j')).map((s) => s.manifest.checkpoint), [3, 4, 5]);
});
