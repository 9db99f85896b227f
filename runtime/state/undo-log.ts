/**
 * The undo log of a task's sealed, not yet committed checkpoints.
 *
 * A task writes checkpoint n's state to its backend when it seals n, before
 * the coordinator commits n. A node killed in between restarts with local
 * state one checkpoint (or a few) ahead of the committed manifest. Without an
 * undo log that state cannot be trusted and is wiped and downloaded again
 * from the snapshot store, which for a million keys takes many seconds.
 * With it, the seal of n also writes, in the same atomic batch, the values
 * its writes replace (the before-images, taken with the backend's `getMany`
 * off the event loop); recovery applies them newest first until the local
 * position is the committed checkpoint's. A record is dropped with the first
 * seal after its checkpoint commits.
 *
 * Layout: chunks of at most CHUNK_ENTRIES before-images under
 * `undoKey(task, checkpoint, chunk)`, each msgpack `[generation, images]`,
 * `images` the before-images as writes (write-batch-codec.ts; a delete for a
 * key that had no value) (docs/reference/state-layout.md). Undo records are
 * outside the task's snapshot prefixes: they never reach the snapshot store.
 */
import { decodeMsgpack, encodeMsgpack } from '../wire/codec.js';
import type { BackendWrite, StateBackend } from './backend.js';
import { undoKey, undoPrefix } from './keys.js';
import { decodeWrites, encodeWrites } from './write-batch-codec.js';
import { readTaskPosition, sameCheckpoint, type CheckpointPoint, type TaskPosition } from './task-position.js';

/** Before-images per undo chunk: keeps each LevelDB value to a few hundred KB. */
const CHUNK_ENTRIES = 10_000;

/** One task's stage and partition in a job. */
export interface TaskAddress {
  readonly job: string;
  readonly stage: string;
  readonly partition: number;
}

type EncodedChunk = [generation: number, images: Uint8Array];

/** The writer side, held by a checkpointing task. */
export class UndoLog {
  /** Chunk keys of each checkpoint sealed with an undo record, until it commits. */
  private readonly records = new Map<number, Uint8Array[]>();
  /** Chunk keys of committed checkpoints: deleted with the next seal. */
  private committed: Uint8Array[] = [];

  constructor(
    private readonly backend: StateBackend,
    private readonly task: TaskAddress,
  ) {}

  /**
   * What to add to the batch that seals `checkpoint` of `generation` with
   * `writes`: the before-images of every key `writes` touches, and the
   * deletes of records whose checkpoint committed. Call it when the previous
   * seal's batch has landed, so the backend holds what `writes` replaces.
   */
  async recordFor(checkpoint: number, generation: number, writes: readonly BackendWrite[]): Promise<BackendWrite[]> {
    const keys = writes.map((w) => w.key);
    const before = await this.backend.getMany(keys);
    const out: BackendWrite[] = [];
    const chunkKeys: Uint8Array[] = [];
    for (let start = 0, chunk = 0; start < keys.length; start += CHUNK_ENTRIES, chunk++) {
      const images: BackendWrite[] = [];
      for (let i = start; i < Math.min(start + CHUNK_ENTRIES, keys.length); i++) images.push({ key: keys[i]!, value: before[i] });
      const key = undoKey(this.task.job, this.task.stage, this.task.partition, checkpoint, chunk);
      chunkKeys.push(key);
      out.push({ key, value: encodeMsgpack([generation, encodeWrites(images)] satisfies EncodedChunk) });
    }
    this.records.set(checkpoint, chunkKeys);
    for (const key of this.committed) out.push({ key, value: undefined });
    this.committed = [];
    return out;
  }

  /** Checkpoint `n` committed: the records up to it are no longer needed. */
  checkpointCommitted(n: number): void {
    for (const [checkpoint, keys] of this.records) {
      if (checkpoint > n) continue;
      this.committed.push(...keys);
      this.records.delete(checkpoint);
    }
  }
}

/**
 * Applies the undo records of `task`, newest checkpoint first, while the
 * local position is not `target` and the record of the local checkpoint
 * (of the local generation) is there. Each step is one atomic batch: the
 * before-images and the deletion of the record. Returns the position the
 * backend ends at, which is `target` only if the log reached it.
 */
export async function rollBack(backend: StateBackend, task: TaskAddress, target: CheckpointPoint): Promise<TaskPosition> {
  for (;;) {
    const local = readTaskPosition(backend, task.job, task.stage, task.partition);
    if (sameCheckpoint(local, target) || local.checkpoint === 0) return local;
    const batch: BackendWrite[] = [];
    for await (const [key, value] of backend.entries(undoPrefix(task.job, task.stage, task.partition, local.checkpoint))) {
      const [generation, images] = decodeMsgpack(value) as EncodedChunk;
      // A record of another run with the same checkpoint id does not describe this state.
      if (generation !== local.generation) return local;
      batch.push(...decodeWrites(images, `the undo record of ${task.job}/${task.stage}/${task.partition} at checkpoint ${local.checkpoint}`));
      batch.push({ key, value: undefined });
    }
    if (batch.length === 0) return local;
    await backend.write(batch);
  }
}

/** Deletes every undo record of `task`: after a restore none describes a state the task can return to. */
export async function clearUndoLog(backend: StateBackend, task: TaskAddress): Promise<void> {
  const deletes: BackendWrite[] = [];
  for await (const [key] of backend.entries(undoPrefix(task.job, task.stage, task.partition))) deletes.push({ key, value: undefined });
  if (deletes.length > 0) await backend.write(deletes);
}
