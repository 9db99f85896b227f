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
  /**
   * Behind an internal stream: the upstream producers whose barrier came
   * before `position`, each with its barrier's sequence. Their records
   * after that sequence were held for the next checkpoint, so the state does
   * not hold them although they precede `position` (BarrierAligner). Empty
   * (or absent) when every record up to `position` is in the state.
   */
  readonly held?: readonly (readonly [producer: string, barrierSeq: number])[];
}

/** What identifies a sealed state: its checkpoint and the run that sealed it (a snapshot name carries both too). */
export type CheckpointPoint = Pick<TaskPosition, 'checkpoint' | 'generation'>;

export const NO_POSITION: TaskPosition = Object.freeze({ position: 0, checkpoint: 0, generation: 0 });

/** Whether two positions were sealed by the same checkpoint of the same run: then they describe the same state. */
export function sameCheckpoint(a: CheckpointPoint, b: CheckpointPoint): boolean {
  return a.checkpoint === b.checkpoint && a.generation === b.generation;
}

/**
 * The input sequence after which a task resumed from `at` must read again:
 * its position, or earlier when records before it were held.
 */
export function resumeAfter(at: TaskPosition): number {
  let after = at.position;
  for (const [, seq] of at.held ?? []) after = Math.min(after, seq);
  return after;
}

export function positionWrite(key: Uint8Array, at: TaskPosition): BackendWrite {
  const fields: unknown[] = [at.position, at.checkpoint, at.generation];
  if (at.held && at.held.length > 0) fields.push(at.held.flat());
  return { key, value: encodeMsgpack(fields) };
}

/** The stored position of a task, or NO_POSITION when it never sealed. */
export function readTaskPosition(backend: StateBackend, job: string, stage: string, partition: number): TaskPosition {
  const bytes = backend.getSync(positionKey(job, stage, partition));
  if (!bytes) return NO_POSITION;
  const decoded = decodeMsgpack(bytes) as unknown;
  const malformed = () =>
    millraceError(ErrorCodes.STATE_CORRUPTED, `the stored position of task ${job}/${stage}/${partition} is malformed`, { disposition: 'task-corrupted' });
  if (!Array.isArray(decoded) || !decoded.slice(0, 3).every(Number.isSafeInteger) || (decoded.length !== 3 && decoded.length !== 4)) throw malformed();
  const [position, checkpoint, generation, flatHeld] = decoded as [number, number, number, unknown];
  if (flatHeld === undefined) return { position, checkpoint, generation };
  // Stored flat: [producer, seq, producer, seq, ...].
  if (!Array.isArray(flatHeld) || flatHeld.length % 2 !== 0) throw malformed();
  const held: [string, number][] = [];
  for (let i = 0; i < flatHeld.length; i += 2) {
    const [producer, seq] = [flatHeld[i], flatHeld[i + 1]];
    if (typeof producer !== 'string' || !Number.isSafeInteger(seq)) throw malformed();
    held.push([producer, seq as number]);
  }
  return { position, checkpoint, generation, held };
}
