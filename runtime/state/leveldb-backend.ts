/**
 * The LevelDB state backend (classic-level): what a node keeps its working
 * state and input positions in. Keys and values are Uint8Arrays end to end
 * ('view' encoding), reads on the hot path are `getSync` (batches of reads off
 * the hot path `getMany`, on libuv's thread pool), and a write-set is
 * one `batch()` — atomic in LevelDB.
 *
 * Every LevelDB failure leaves as MR_STATE_CORRUPTED; calls after close()
 * fail with MR_NODE_STOPPED.
 */
import { ClassicLevel } from 'classic-level';
import { ErrorCodes, millraceError, type MillraceError } from '../../errors.js';
import type { BackendWrite, StateBackend } from './backend.js';
import { assertBatch, stoppedError } from './backend-checks.js';

type Db = ClassicLevel<Uint8Array, Uint8Array>;

/** Opens (creating if missing) the LevelDB store in `dir`. */
export async function openLevelDbBackend(dir: string): Promise<StateBackend> {
  const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  try {
    await db.open();
  } catch (err) {
    throw openError(dir, err);
  }
  return new LevelDbBackend(db, dir);
}

class LevelDbBackend implements StateBackend {
  #closing: Promise<void> | undefined;

  constructor(private readonly db: Db, private readonly dir: string) {}

  getSync(key: Uint8Array): Uint8Array | undefined {
    if (this.#closing) throw stoppedError();
    try {
      return this.db.getSync(key);
    } catch (err) {
      throw this.storeError('read', err);
    }
  }

  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    if (this.#closing) throw stoppedError();
    if (keys.length === 0) return [];
    try {
      return await this.db.getMany([...keys]);
    } catch (err) {
      throw this.storeError('read', err);
    }
  }

  async write(batch: readonly BackendWrite[]): Promise<void> {
    if (this.#closing) throw stoppedError();
    assertBatch(batch);
    if (batch.length === 0) return;
    const ops = batch.map((w) =>
      w.value === undefined
        ? { type: 'del' as const, key: w.key }
        : { type: 'put' as const, key: w.key, value: w.value },
    );
    try {
      await this.db.batch(ops);
    } catch (err) {
      throw this.storeError('write', err);
    }
  }

  async *entries(prefix: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]> {
    if (this.#closing) throw stoppedError();
    const upper = prefixSuccessor(prefix);
    const range = upper === undefined ? { gte: prefix } : { gte: prefix, lt: upper };
    // The iterator reads from an implicit snapshot taken when it is created.
    const it = this.db.iterator(range);
    try {
      for (;;) {
        const chunk = await it.nextv(1000);
        if (chunk.length === 0) return;
        yield* chunk;
      }
    } catch (err) {
      throw this.#closing ? stoppedError(err) : this.storeError('iterate', err);
    } finally {
      await it.close();
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.db.close().catch((err: unknown) => {
      throw this.storeError('close', err);
    });
    return this.#closing;
  }

  private storeError(op: string, err: unknown): MillraceError {
    const reason = err instanceof Error ? err.message : String(err);
    return millraceError(ErrorCodes.STATE_CORRUPTED, `LevelDB ${op} failed in ${this.dir}: ${reason}`, {
      cause: err,
      disposition: 'task-corrupted',
      details: { dir: this.dir, op },
    });
  }
}

function openError(dir: string, err: unknown): MillraceError {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  if (cause?.code === 'LEVEL_LOCKED') {
    return millraceError(
      ErrorCodes.STATE_CORRUPTED,
      `state dir ${dir} is locked: another millrace node process probably uses this data dir; ` +
        'stop it or give this node its own data dir',
      { cause: err, disposition: 'terminal', details: { dir, reason: 'locked' } },
    );
  }
  const reason = err instanceof Error ? (cause instanceof Error ? cause.message : err.message) : String(err);
  return millraceError(ErrorCodes.STATE_CORRUPTED, `cannot open LevelDB state store in ${dir}: ${reason}`, {
    cause: err,
    disposition: 'terminal',
    details: { dir },
  });
}

/**
 * The smallest key greater than every key starting with `prefix`: drop
 * trailing 0xff bytes, then add one to the last byte. None if all are 0xff.
 */
export function prefixSuccessor(prefix: Uint8Array): Uint8Array | undefined {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return undefined;
  const upper = new Uint8Array(prefix.subarray(0, end)); // a copy: Buffer#slice is a view
  upper[end - 1]++;
  return upper;
}
