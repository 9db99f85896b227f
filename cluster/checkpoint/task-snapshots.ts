/**
 * The node side of a task's snapshots: turns each sealed checkpoint into an
 * upload (a delta of the sealed writes, or every `fullEvery` checkpoints a
 * full copy of the task's keys) and keeps the task's snapshot chain; and
 * before a task starts, makes its local state that of the checkpoint the job
 * restores (local LevelDB if it holds exactly that checkpoint, else wiped and
 * filled from the snapshot store, as Kafka Streams does with a store it
 * cannot trust).
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { readTaskPosition } from '../../runtime/state/task-position.js';
import type { SealedCheckpoint } from '../../runtime/task/task.js';
import type { TaskCheckpoint } from './manifest-store.js';
import type { SnapshotStore } from './snapshot-store.js';

export class TaskSnapshots {
  private chain: string[];
  private sinceFull: number;

  constructor(
    private readonly store: SnapshotStore,
    private readonly backend: StateBackend,
    private readonly job: string,
    private readonly fullEvery: number,
    /** The chain of the checkpoint the task restored, if any. */
    restored: readonly string[],
  ) {
    this.chain = [...restored];
    this.sinceFull = restored.length;
  }

  /** Uploads what `sealed` needs; returns the chain that restores it, oldest first. */
  async upload(sealed: SealedCheckpoint): Promise<string[]> {
    const full = this.chain.length === 0 || this.sinceFull >= this.fullEvery;
    const ref = { job: this.job, task: sealed.task, checkpoint: sealed.checkpoint, generation: sealed.generation, kind: full ? 'full' : 'delta' } as const;
    const name = await this.store.put(ref, full ? await entriesUnder(this.backend, sealed.prefixes) : sealed.writes);
    this.chain = full ? [name] : [...this.chain, name];
    this.sinceFull = full ? 1 : this.sinceFull + 1;
    return [...this.chain];
  }
}

/** How a task's local state was brought to the checkpoint being restored. */
export type RestoreSource = 'local' | 'snapshot' | 'empty';

/**
 * Makes the task's keys in `backend` hold exactly the state of `checkpoint`
 * of generation `generation` (`part` undefined: the job has no checkpoint
 * yet, so the task starts empty).
 */
export async function restoreTaskState(
  backend: StateBackend,
  store: SnapshotStore,
  where: { job: string; stage: string; partition: number; prefixes: readonly Uint8Array[] },
  checkpoint: { id: number; generation: number; part: TaskCheckpoint | undefined },
): Promise<RestoreSource> {
  const local = readTaskPosition(backend, where.job, where.stage, where.partition);
  if (checkpoint.part && local.checkpoint === checkpoint.id && local.generation === checkpoint.generation) return 'local';
  await wipe(backend, where.prefixes);
  if (!checkpoint.part) return 'empty';
  await store.restore(checkpoint.part.snapshots, backend);
  const restored = readTaskPosition(backend, where.job, where.stage, where.partition);
  if (restored.checkpoint !== checkpoint.id || restored.generation !== checkpoint.generation) {
    throw millraceError(
      ErrorCodes.STATE_CORRUPTED,
      `the snapshots of task ${where.job}/${where.stage}/${where.partition} restore checkpoint ${restored.checkpoint} (generation ${restored.generation}), not ${checkpoint.id} (generation ${checkpoint.generation})`,
      { disposition: 'task-corrupted', details: { snapshots: checkpoint.part.snapshots } },
    );
  }
  return 'snapshot';
}

async function entriesUnder(backend: StateBackend, prefixes: readonly Uint8Array[]): Promise<BackendWrite[]> {
  const out: BackendWrite[] = [];
  for (const prefix of prefixes) for await (const [key, value] of backend.entries(prefix)) out.push({ key, value });
  return out;
}

async function wipe(backend: StateBackend, prefixes: readonly Uint8Array[]): Promise<void> {
  const deletes = (await entriesUnder(backend, prefixes)).map(({ key }) => ({ key, value: undefined }));
  if (deletes.length > 0) await backend.write(deletes);
}
