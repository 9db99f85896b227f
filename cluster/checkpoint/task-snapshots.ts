/**
 * The node side of a task's snapshots: turns each sealed checkpoint into an
 * upload (a delta of the sealed writes; a full copy of the task's keys when
 * there is no chain to add to) and keeps the task's snapshot chain, which a
 * full snapshot taken in the background every `fullEvery` checkpoints cuts
 * short again (compaction); and
 * before a task starts, makes its local state that of the checkpoint the job
 * restores: local LevelDB if it holds that checkpoint or can get there (by its
 * undo log, or by the deltas after a checkpoint it holds), else wiped and
 * filled from the snapshot store, as Kafka Streams does with a store it
 * cannot trust.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { readTaskPosition, sameCheckpoint, type CheckpointPoint } from '../../runtime/state/task-position.js';
import { clearUndoLog, rollBack, type TaskAddress } from '../../runtime/state/undo-log.js';
import type { SealedCheckpoint } from '../../runtime/task/task.js';
import type { TaskCheckpoint } from './manifest-store.js';
import { parseSnapshotName, type SnapshotStore } from './snapshot-store.js';

/** A full snapshot uploading in the background, of the checkpoint whose delta is `delta`. */
interface Compaction {
  /** The delta of the same checkpoint: the chain must still hold it for the full snapshot to replace what leads up to it. */
  readonly delta: string;
  /** The full snapshot's name once uploaded; undefined while uploading or if the upload failed. */
  name?: string;
  settled: boolean;
  readonly done: Promise<void>;
}

export class TaskSnapshots {
  private chain: string[];
  private sinceFull: number;
  private compaction: Compaction | undefined;

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

  /**
   * Uploads what `sealed` needs; returns the chain that restores it, oldest
   * first. After a failed upload the chain is broken (the next delta would
   * miss this one's writes), so the next upload is a full snapshot.
   *
   * Call it while the backend holds exactly `sealed`'s checkpoint (a task
   * calls it before its next seal lands): a full snapshot reads the backend.
   */
  async upload(sealed: SealedCheckpoint): Promise<string[]> {
    this.adoptCompaction();
    const full = this.chain.length === 0;
    const ref = { job: this.job, task: sealed.task, checkpoint: sealed.checkpoint, generation: sealed.generation, kind: full ? 'full' : 'delta' } as const;
    let name: string;
    try {
      name = await this.store.put(ref, full ? await entriesUnder(this.backend, sealed.prefixes) : sealed.writes);
    } catch (err) {
      this.chain = [];
      throw err;
    }
    this.chain = full ? [name] : [...this.chain, name];
    this.sinceFull = full ? 1 : this.sinceFull + 1;
    return [...this.chain];
  }

  /**
   * Once the chain has `fullEvery` snapshots, reads the task's keys as of
   * `sealed` (the same condition as `upload`) and uploads them as a full
   * snapshot in the background; the first upload after it is stored starts
   * the chain from it. Off the checkpoint's path: a full snapshot of a
   * million keys took seconds, and every tenth checkpoint, or the first
   * after a restore, waited for it.
   */
  async compactIfDue(sealed: SealedCheckpoint): Promise<void> {
    const delta = this.chain.at(-1);
    if (this.compaction || this.sinceFull < this.fullEvery || !delta || parseSnapshotName(delta).checkpoint !== sealed.checkpoint) return;
    const entries = await entriesUnder(this.backend, sealed.prefixes);
    const ref = { job: this.job, task: sealed.task, checkpoint: sealed.checkpoint, generation: sealed.generation, kind: 'full' } as const;
    const compaction: Compaction = {
      delta,
      settled: false,
      done: this.store.put(ref, entries).then(
        (name) => void Object.assign(compaction, { name, settled: true }),
        () => void Object.assign(compaction, { settled: true }), // the chain goes on with deltas; the next checkpoint tries again
      ),
    };
    this.compaction = compaction;
  }

  /** Settles when no background full snapshot is uploading. */
  compacted(): Promise<void> {
    return this.compaction?.done ?? Promise.resolve();
  }

  /** A finished compaction replaces the chain up to its checkpoint, if the chain still leads there. */
  private adoptCompaction(): void {
    const compaction = this.compaction;
    if (!compaction?.settled) return;
    this.compaction = undefined;
    const at = this.chain.indexOf(compaction.delta);
    if (!compaction.name || at < 0) return;
    this.chain = [compaction.name, ...this.chain.slice(at + 1)];
    this.sinceFull = this.chain.length;
  }
}

/**
 * How a task's local state was brought to the checkpoint being restored:
 * - `local`: LevelDB held exactly that checkpoint;
 * - `rolledBack`: LevelDB was ahead (sealed checkpoints that never
 *   committed) and its undo log took it back (runtime/state/undo-log.ts);
 * - `caughtUp`: LevelDB held an earlier checkpoint of the snapshot chain (the
 *   task ran elsewhere since) and the chain's later deltas were applied;
 * - `snapshot`: wiped and restored from the whole chain;
 * - `empty`: the job has no checkpoint yet; wiped.
 */
export const RESTORE_SOURCES = ['local', 'rolledBack', 'caughtUp', 'snapshot', 'empty'] as const;
export type RestoreSource = (typeof RESTORE_SOURCES)[number];

/**
 * Makes the task's keys in `backend` hold exactly the state of `checkpoint`
 * of generation `generation` (`part` undefined: the job has no checkpoint
 * yet, so the task starts empty), downloading as little as it can.
 */
export async function restoreTaskState(
  backend: StateBackend,
  store: SnapshotStore,
  where: TaskAddress & { prefixes: readonly Uint8Array[] },
  checkpoint: { id: number; generation: number; part: TaskCheckpoint | undefined },
): Promise<RestoreSource> {
  if (!checkpoint.part) {
    await wipe(backend, where.prefixes);
    await clearUndoLog(backend, where);
    return 'empty';
  }
  const target = { checkpoint: checkpoint.id, generation: checkpoint.generation };
  const source = await restore(backend, store, where, target, checkpoint.part.snapshots);
  await clearUndoLog(backend, where);
  const restored = readTaskPosition(backend, where.job, where.stage, where.partition);
  if (!sameCheckpoint(restored, target)) {
    throw millraceError(
      ErrorCodes.STATE_CORRUPTED,
      `restoring task ${where.job}/${where.stage}/${where.partition} (${source}) gave checkpoint ${restored.checkpoint} (generation ${restored.generation}), not ${checkpoint.id} (generation ${checkpoint.generation})`,
      { disposition: 'task-corrupted', details: { source, snapshots: checkpoint.part.snapshots } },
    );
  }
  return source;
}

/** Brings the backend to `target`, whose snapshot chain is `chain`, the cheapest way it can. */
async function restore(
  backend: StateBackend,
  store: SnapshotStore,
  where: TaskAddress & { prefixes: readonly Uint8Array[] },
  target: CheckpointPoint,
  chain: readonly string[],
): Promise<RestoreSource> {
  const before = readTaskPosition(backend, where.job, where.stage, where.partition);
  const local = await rollBack(backend, where, target);
  if (sameCheckpoint(local, target)) return sameCheckpoint(before, target) ? 'local' : 'rolledBack';
  const at = chain.findIndex((name) => sameCheckpoint(parseSnapshotName(name), local));
  if (local.checkpoint > 0 && at >= 0) {
    await store.apply(chain.slice(at + 1), backend);
    if (sameCheckpoint(readTaskPosition(backend, where.job, where.stage, where.partition), target)) return 'caughtUp';
  }
  await wipe(backend, where.prefixes);
  await store.restore(chain, backend);
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
