/**
 * Before a task starts, its local state is brought to the checkpoint the job
 * restores, downloading as little as it can: as it is, by its undo log, by
 * the deltas after a checkpoint it holds, or from the whole snapshot chain.
 * Every way must end in exactly the state the task had when it sealed that
 * checkpoint (the reference: a dump taken then). Snapshots go through the
 * object store of a real nats-server.
 */
import test from 'ava';
import { SnapshotStore } from '../../cluster/checkpoint/snapshot-store.js';
import { restoreTaskState, TaskSnapshots } from '../../cluster/checkpoint/task-snapshots.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { keyspace, positionKey, stagedPrefix, undoPrefix } from '../../runtime/state/keys.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';
import { positionWrite } from '../../runtime/state/task-position.js';
import { UndoLog } from '../../runtime/state/undo-log.js';
import { natsForFile } from '../helpers/nats.js';
import { dump, dumpUnder, hex } from '../helpers/backend-dump.js';

const server = natsForFile(test);

const JOB = 'restore';
const STAGE = 's0';
const PARTITION = 1;
const TASK_ID = `${JOB}/${STAGE}/${PARTITION}`;
const space = keyspace(JOB, 'count', PARTITION);
const where = { job: JOB, stage: STAGE, partition: PARTITION, prefixes: [positionKey(JOB, STAGE, PARTITION), stagedPrefix(JOB, STAGE, PARTITION), space.statePrefix] };

/** The task's state: everything under its prefixes (undo records are not state). */
function stateOf(backend: StateBackend): Promise<Record<string, string>> {
  return dumpUnder(backend, where.prefixes);
}

/** Checkpoint c writes 50 keys out of 200, deleting some: each checkpoint's state differs. */
function writesOf(c: number): BackendWrite[] {
  return Array.from({ length: 50 }, (_, i) => {
    const key = space.state(`k${(c * 37 + i * 7) % 200}`, 'n');
    return { key, value: i % 9 === 0 ? undefined : new TextEncoder().encode(`c${c}-${i}`) };
  });
}

/** A task on one node: seals like runtime/task/task.ts (state, position and undo record in one batch), uploads like the job runner. */
class SealingTask {
  readonly chains = new Map<number, string[]>();
  readonly states = new Map<number, Record<string, string>>();
  private readonly undo: UndoLog;
  private readonly uploads: TaskSnapshots;

  constructor(readonly backend: StateBackend, store: SnapshotStore, private readonly generation: number, restored: string[] = []) {
    this.undo = new UndoLog(backend, where);
    this.uploads = new TaskSnapshots(store, backend, JOB, 3, restored);
  }

  async seal(checkpoint: number): Promise<void> {
    const writes = [...writesOf(checkpoint), positionWrite(where.prefixes[0]!, { position: checkpoint * 10, checkpoint, generation: this.generation })];
    await this.backend.write([...writes, ...(await this.undo.recordFor(checkpoint, this.generation, writes))]);
    this.states.set(checkpoint, await stateOf(this.backend));
    const sealed = { task: TASK_ID, checkpoint, generation: this.generation, position: checkpoint * 10, resumeAfter: checkpoint * 10, writes, prefixes: where.prefixes };
    this.chains.set(checkpoint, await this.uploads.upload(sealed));
    await this.uploads.compactIfDue(sealed);
    await this.uploads.compacted(); // the chains below are then the same in every run
  }

  /** What the manifest of `checkpoint` says about this task. */
  part(checkpoint: number) {
    return { id: checkpoint, generation: this.generation, part: { snapshots: this.chains.get(checkpoint)!, positions: { in: checkpoint * 10 } } };
  }
}

async function sealedUpTo(last: number, backend: StateBackend = createMemoryBackend()): Promise<Sealed> {
  const store = await SnapshotStore.open(server.nc.jetstream(), { bucket: server.nats.unique('snap') });
  const task = new SealingTask(backend, store, 4);
  for (let c = 1; c <= last; c++) await task.seal(c);
  return { task, store };
}
type Sealed = { task: SealingTask; store: SnapshotStore };

test('a backend holding exactly the checkpoint is used as it is', async (t) => {
  const { task, store } = await sealedUpTo(4);
  t.is(await restoreTaskState(task.backend, store, where, task.part(4)), 'local');
  t.deepEqual(await stateOf(task.backend), task.states.get(4));
});

test('a backend ahead of the checkpoint (killed between seal and commit) is rolled back by its undo log, records and all', async (t) => {
  const { task, store } = await sealedUpTo(6);
  t.is(await restoreTaskState(task.backend, store, where, task.part(4)), 'rolledBack');
  t.deepEqual(await stateOf(task.backend), task.states.get(4));
  t.deepEqual(await dump(task.backend, undoPrefix(JOB, STAGE, PARTITION)), {}, 'no undo record is left');
});

test('a backend holding an earlier checkpoint of the chain applies only the later deltas', async (t) => {
  const { task, store } = await sealedUpTo(5); // full snapshots at 1 and (compacted, in the background) 3; deltas 2 to 5
  const behind = createMemoryBackend();
  await behind.write(Object.entries(task.states.get(4)!).map(([k, v]) => ({ key: Buffer.from(k, 'hex'), value: Buffer.from(v, 'hex') })));
  t.deepEqual(task.chains.get(5)!.map((n) => n.slice(n.lastIndexOf('/') + 1)), ['000000000003-g4-full', '000000000004-g4-delta', '000000000005-g4-delta']);
  t.is(await restoreTaskState(behind, store, where, task.part(5)), 'caughtUp');
  t.deepEqual(await stateOf(behind), task.states.get(5));
});

test('a backend holding a checkpoint outside the chain, or another run\'s, is wiped and restored from the whole chain', async (t) => {
  const { task, store } = await sealedUpTo(5);
  const older = createMemoryBackend();
  await older.write(Object.entries(task.states.get(2)!).map(([k, v]) => ({ key: Buffer.from(k, 'hex'), value: Buffer.from(v, 'hex') })));
  t.is(await restoreTaskState(older, store, where, task.part(5)), 'snapshot', 'checkpoint 2 is before the chain\'s full snapshot at 3');
  t.deepEqual(await stateOf(older), task.states.get(5));

  const foreign = createMemoryBackend();
  await foreign.write([...writesOf(99), positionWrite(where.prefixes[0]!, { position: 50, checkpoint: 5, generation: 9 })]);
  t.is(await restoreTaskState(foreign, store, where, task.part(5)), 'snapshot');
  t.deepEqual(await stateOf(foreign), task.states.get(5));

  const empty = createMemoryBackend();
  t.is(await restoreTaskState(empty, store, where, task.part(5)), 'snapshot');
  t.deepEqual(await stateOf(empty), task.states.get(5));
});

test('with no checkpoint yet the task starts empty, whatever the backend held', async (t) => {
  const { task, store } = await sealedUpTo(2);
  t.is(await restoreTaskState(task.backend, store, where, { id: 0, generation: 0, part: undefined }), 'empty');
  t.deepEqual(await dump(task.backend), {});
});
