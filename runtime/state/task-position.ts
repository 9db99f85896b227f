/**
 * What a task's state store says about how far the task got: the input
 * position its state covers and the checkpoint that sealed it. Both are
 * written in the same atomic batch as the state they describe, so a store
 * whose `checkpoint` equals a committed manifest's holds exactly that
 * checkpoint's state (docs/reference/state-layout.md).
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import { decodeMsgpack, encodeMsgpack } from '../wire/codec.js';
import type { BackendWrite, StateBackend } from './backend.js';
import { positionKey } from './keys.js';

export interface TaskPosition {
  /** The last input stream sequence whose effects the state holds; 0 before any. */
  readonly position: number;
  /** The checkpoint that sealed this state; 0 when none did (a task run without a coordinator, or never sealed). */
  readonly checkpoint: number;
  /** The generation (run) of the job that sealed it: checkpoint ids of aborted runs may repeat, the pair does not. */
  readonly generation: number;
}

/** What identifies a sealed state: its checkpoint and the run that sealed it (a snapshot name carries both too). */
export type CheckpointPoint = Pick<TaskPosition, 'checkpoint' | 'generation'>;

export const NO_POSITION: TaskPosition = Object.freeze({ position: 0, checkpoint: 0, generation: 0 });

/** Whether two positions were sealed by the same checkpoint of the same run: then they describe the same state. */
export function sameCheckpoint(a: CheckpointPoint, b: CheckpointPoint): boolean {
  return a.checkpoint === b.checkpoint && a.generation === b.generation;
}

export function positionWrite(key: Uint8Array, at: TaskPosition): BackendWrite {
  return { key, value: encodeMsgpack([at.position, at.checkpoint, at.generation]) };
}

/** The stored position of a task, or NO_POSITION when it never sealed. */
export function readTaskPosition(backend: StateBackend, job: string, stage: string, partition: number): TaskPosition {
  const bytes = backend.getSync(positionKey(job, stage, partition));
  if (!bytes) return NO_POSITION;
  const decoded = decodeMsgpack(bytes) as unknown;
  if (!Array.isArray(decoded) || !decoded.slice(0, 3).every(Number.isSafeInteger) || decoded.length !== 3) {
    throw millraceError(ErrorCodes.STATE_CORRUPTED, `the stored position of task ${job}/${stage}/${partition} is malformed`, {
      disposition: 'task-corrupted',
    });
  }
  const [position, checkpoint, generation] = decoded as number[];
  return { position: position!, checkpoint: checkpoint!, generation: generation! };
}
