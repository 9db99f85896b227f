/**
 * The working-state store of one node: what a task reads on a cache miss and
 * where its sealed write-sets land, atomically with its input positions.
 *
 * Keys and values are raw bytes; the layout of keys is runtime/state/keys.ts
 * and the encoding of values is the state layer's business, not the backend's.
 * Two implementations pass one conformance suite (test/unit/state-backend.test.ts):
 * LevelDB (classic-level) for nodes, memory for unit tests.
 */

/** One write of an atomic batch: `value === undefined` deletes the key. */
export interface BackendWrite {
  readonly key: Uint8Array;
  readonly value: Uint8Array | undefined;
}

export interface StateBackend {
  /** The committed value of `key`, read synchronously (LevelDB `getSync`). */
  getSync(key: Uint8Array): Uint8Array | undefined;
  /** The committed values of `keys`, in order, read off the event loop (LevelDB `getMany`). */
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Applies all writes or none. When the promise resolves the batch is durable
   * to the degree the backend promises (LevelDB: in its write-ahead log).
   */
  write(batch: readonly BackendWrite[]): Promise<void>;
  /** Entries whose key starts with `prefix`, in ascending byte order of key. */
  entries(prefix: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]>;
  /** Releases the store; later calls reject. Idempotent. */
  close(): Promise<void>;
}
