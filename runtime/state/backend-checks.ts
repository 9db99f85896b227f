/**
 * Argument and lifecycle checks every StateBackend applies the same way, so
 * both implementations fail alike in the conformance suite.
 */
import { ErrorCodes, millraceError, type MillraceError } from '../../errors.js';
import type { BackendWrite } from './backend.js';

/**
 * Throws a TypeError unless every key and value is a Uint8Array (value may be
 * undefined). Runs before anything is written, so a bad batch writes nothing;
 * LevelDB's 'view' encoding would otherwise store a string key as its UTF-8.
 */
export function assertBatch(batch: readonly BackendWrite[]): void {
  if (!Array.isArray(batch)) throw new TypeError('state batch must be an array of writes');
  for (let i = 0; i < batch.length; i++) {
    const w = batch[i];
    if (!(w?.key instanceof Uint8Array)) throw new TypeError(`state batch write ${i}: key must be a Uint8Array`);
    if (w.value !== undefined && !(w.value instanceof Uint8Array)) {
      throw new TypeError(`state batch write ${i}: value must be a Uint8Array or undefined`);
    }
  }
}

/** The error of any call on a backend after close(). */
export function stoppedError(cause?: unknown): MillraceError {
  return millraceError(ErrorCodes.NODE_STOPPED, 'the state backend is closed; the node is stopping', {
    cause,
    disposition: 'terminal',
  });
}
