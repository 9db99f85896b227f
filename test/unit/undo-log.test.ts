/**
 * The undo log takes a task's state back from sealed, uncommitted
 * checkpoints to the committed one. Reference: a dump of the whole backend
 * taken when the committed checkpoint had landed; a rollback must give
 * exactly it back, on LevelDB as on the memory backend.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { undoPrefix } from '../../runtime/state/keys.js';
import { openLevelDbBackend } from '../../runtime/state/leveldb-backend.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import { positionWrite, readTaskPosition } from '../../runtime/state/task-position.js';
import { positionKey } from '../../runtime/state/keys.js';
import { clearUndoLog, rollBack, UndoLog } from '../../runtime/state/undo-log.js';
import { dump, hex } from '../helpers/backend-dump.js';

const TASK = { job: 'j', stage: 's0', partition: 2 };
const bytes = (s: string) => new TextEncoder().encode(s);

/** Everything but the undo records: what the task's state is. */
async function stateOf(backend: StateBackend): Promise<Record<string, string>> {
  const all = await dump(backend);
  const undo = hex(undoPrefix(TASK.job, TASK.stage, TASK.partition));
  return Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith(undo)));
}

/** Seals like a Task does: the writes, the position, and the undo record, in one batch. */
async function seal(backend: StateBackend, log: UndoLog, checkpoint: number, generation: number, writes: BackendWrite[]): Promise<void> {
  const all = [...writes, positionWrite(positionKey(TASK.job, TASK.stage, TASK.partition), { position: checkpoint * 100, checkpoint, generation })];
  const undo = await log.recordFor(checkpoint, generation, all);
  await backend.write([...all, ...undo]);
}

/** A deterministic pseudo-random sequence (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let r = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/** Puts, overwrites and deletes over 300 keys: some touched twice in one checkpoint's batch. */
function randomWrites(next: () => number, count: number): BackendWrite[] {
  return Array.from({ length: count }, () => {
    const key = bytes(`k${Math.floor(next() * 300)}`);
    return next() < 0.25 ? { key, value: undefined } : { key, value: bytes(`v${Math.floor(next() * 1e6)}`) };
  });
}

const backends: [string, () => Promise<{ backend: StateBackend; done: () => Promise<void> }>][] = [
  ['memory', async () => ({ backend: createMemoryBackend(), done: async () => undefined })],
  [
    'leveldb',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'millrace-undo-'));
      const backend = await openLevelDbBackend(dir);
      return { backend, done: async () => { await backend.close(); await rm(dir, { recursive: true, force: true }); } };
    },
  ],
];

for (const [name, open] of backends) {
  test(`${name}: rolling back from any later sealed checkpoint gives exactly the committed checkpoint's state`, async (t) => {
    for (let seed = 1; seed <= 20; seed++) {
      const { backend, done } = await open();
      try {
        const next = random(seed);
        const log = new UndoLog(backend, TASK);
        const committed = 1 + Math.floor(next() * 4);
        const sealed = committed + 1 + Math.floor(next() * 4);
        let reference: Record<string, string> = {};
        for (let c = 1; c <= sealed; c++) {
          await seal(backend, log, c, 7, randomWrites(next, 1 + Math.floor(next() * 60)));
          if (c === committed) reference = await stateOf(backend);
        }
        const target = { position: committed * 100, checkpoint: committed, generation: 7 };
        t.like(await rollBack(backend, TASK, target), { checkpoint: committed, generation: 7 }, `seed ${seed}`);
        t.deepEqual(await stateOf(backend), reference, `seed ${seed}: state after rolling back ${sealed} → ${committed}`);
      } finally {
        await done();
      }
    }
  });
}

test('a committed checkpoint\'s undo record is deleted with the next seal; newer ones stay', async (t) => {
  const backend = createMemoryBackend();
  const log = new UndoLog(backend, TASK);
  for (let c = 1; c <= 3; c++) await seal(backend, log, c, 1, [{ key: bytes(`k${c}`), value: bytes('v') }]);
  const records = async () => Object.keys(await dump(backend, undoPrefix(TASK.job, TASK.stage, TASK.partition))).length;
  t.is(await records(), 3);
  log.checkpointCommitted(2);
  t.is(await records(), 3, 'nothing is deleted before the next seal');
  await seal(backend, log, 4, 1, [{ key: bytes('k4'), value: bytes('v') }]);
  t.is(await records(), 2, 'the records of checkpoints 3 and 4 are left');
  t.like(await rollBack(backend, TASK, { checkpoint: 2, generation: 1 }), { checkpoint: 2 });
  t.is(await records(), 0);
});

test('a seal of more than 10,000 writes is undone from several chunks', async (t) => {
  const backend = createMemoryBackend();
  const log = new UndoLog(backend, TASK);
  await seal(backend, log, 1, 1, Array.from({ length: 25_000 }, (_, i) => ({ key: bytes(`k${i}`), value: bytes('a') })));
  const reference = await stateOf(backend);
  await seal(backend, log, 2, 1, Array.from({ length: 25_000 }, (_, i) => ({ key: bytes(`k${i * 2}`), value: i % 2 ? undefined : bytes('b') })));
  t.is(Object.keys(await dump(backend, undoPrefix(TASK.job, TASK.stage, TASK.partition, 2))).length, 3);
  await rollBack(backend, TASK, { checkpoint: 1, generation: 1 });
  t.deepEqual(await stateOf(backend), reference);
});

test('rollback stops where no record describes the local state: at a record of another generation, or none', async (t) => {
  const backend = createMemoryBackend();
  const log = new UndoLog(backend, TASK);
  await seal(backend, log, 1, 1, [{ key: bytes('a'), value: bytes('1') }]);
  await seal(backend, log, 2, 1, [{ key: bytes('a'), value: bytes('2') }]);
  // A later run restored checkpoint 1 elsewhere; this node then sealed 2 of generation 2 without a record (as if lost).
  await backend.write([{ key: bytes('a'), value: bytes('x') }, positionWrite(positionKey(TASK.job, TASK.stage, TASK.partition), { position: 0, checkpoint: 2, generation: 2 })]);
  t.like(await rollBack(backend, TASK, { checkpoint: 1, generation: 1 }), { checkpoint: 2, generation: 2 }, 'generation 1\'s record of 2 is not applied');
  t.is(hex(backend.getSync(bytes('a'))!), hex(bytes('x')));
  await clearUndoLog(backend, TASK);
  t.deepEqual(await dump(backend, undoPrefix(TASK.job, TASK.stage, TASK.partition)), {});
  t.like(readTaskPosition(backend, TASK.job, TASK.stage, TASK.partition), { checkpoint: 2, generation: 2 });
});
