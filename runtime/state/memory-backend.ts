/**
 * The in-memory state backend, for unit tests and the test harness. Same
 * semantics as LevelDB: byte-ordered keys, atomic batches, an iteration
 * snapshot, and no aliasing — buffers are copied in and out.
 *
 * Entries live in a Map keyed by the latin1 string of the key: latin1 maps
 * each byte to one UTF-16 code unit, so string order is byte order.
 */
import type { BackendWrite, StateBackend } from './backend.js';
import { assertBatch, stoppedError } from './backend-checks.js';

interface Entry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/** A fresh, empty in-memory backend. */
export function createMemoryBackend(): StateBackend {
  const store = new Map<string, Entry>();
  let closed = false;

  return {
    getSync(key) {
      if (closed) throw stoppedError();
      const entry = store.get(id(key));
      return entry && copy(entry.value);
    },

    async getMany(keys) {
      if (closed) throw stoppedError();
      return keys.map((key) => {
        const entry = store.get(id(key));
        return entry && copy(entry.value);
      });
    },

    async write(batch: readonly BackendWrite[]) {
      if (closed) throw stoppedError();
      assertBatch(batch);
      for (const { key, value } of batch) {
        if (value === undefined) store.delete(id(key));
        else store.set(id(key), { key: copy(key), value: copy(value) });
      }
    },

    async *entries(prefix) {
      if (closed) throw stoppedError();
      const p = id(prefix);
      const snapshot = [...store].filter(([k]) => k.startsWith(p)).sort(([a], [b]) => (a < b ? -1 : 1));
      for (const [, e] of snapshot) {
        if (closed) throw stoppedError();
        yield [copy(e.key), copy(e.value)];
      }
    },

    async close() {
      closed = true;
    },
  };
}

function id(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** A copy as a plain Uint8Array (Buffer#slice would return a view). */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}
