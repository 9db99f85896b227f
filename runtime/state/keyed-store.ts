/**
 * The keyed state of one operator in one task: a cache of decoded values in
 * front of the state backend, with the task's write-set.
 *
 * Reads are synchronous: the cache, else the backend's `getSync`. Writes
 * mark an entry dirty; `seal()` encodes every dirty entry into backend writes
 * (atomically committed by the task together with its input position) and
 * remembers them as in flight until `committed()` says they are durable.
 * Clean entries are evicted oldest-loaded first once the cache is full;
 * dirty and in-flight entries never are, or a read could see the backend's
 * older value.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import { decodeMsgpack, encodeMsgpack } from '../wire/codec.js';
import type { BackendWrite, StateBackend } from './backend.js';

/** Marks a key known to have no value in the backend. */
const ABSENT = Symbol('absent');

interface DirtyRef {
  readonly key: string;
  readonly state: string;
}

export interface KeyspaceLike {
  state(key: string, stateName: string): Uint8Array;
}

export class KeyedStore {
  private readonly values = new Map<string, unknown>();
  private dirty = new Map<string, DirtyRef>();
  /** Cache key → number of the seal that wrote it; dropped once that seal is durable. */
  private readonly inFlight = new Map<string, number>();
  private seals = 0;

  constructor(
    private readonly backend: StateBackend,
    private readonly keyspace: KeyspaceLike,
    private readonly cacheEntries: number,
  ) {}

  /** The value of `state` for `key`, or `undefined`. */
  read(key: string, state: string): unknown {
    const id = cacheKey(key, state);
    let v = this.values.get(id);
    if (v === undefined) {
      v = this.load(key, state);
      this.values.set(id, v);
      if (this.values.size > this.cacheEntries) this.evict(id);
    }
    return v === ABSENT ? undefined : v;
  }

  /** Sets (or with `undefined`, deletes) the value of `state` for `key`. */
  write(key: string, state: string, value: unknown): void {
    const id = cacheKey(key, state);
    this.values.set(id, value === undefined ? ABSENT : value);
    if (!this.dirty.has(id)) this.dirty.set(id, { key, state });
  }

  /** Replaces the cached form of a value without marking it changed (e.g. decoded pairs → Map). */
  recache(key: string, state: string, value: unknown): void {
    const id = cacheKey(key, state);
    if (this.values.has(id)) this.values.set(id, value);
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  /** Encodes the write-set into backend writes and starts a new one. Returns the seal's number. */
  seal(into: BackendWrite[]): number {
    const seal = ++this.seals;
    for (const [id, ref] of this.dirty) {
      const v = this.values.get(id);
      into.push({ key: this.keyspace.state(ref.key, ref.state), value: v === ABSENT || v === undefined ? undefined : encodeMsgpack(v instanceof Map ? [...v] : v) });
      this.inFlight.set(id, seal);
    }
    this.dirty = new Map();
    return seal;
  }

  /** Seals up to `seal` are in the backend: their entries may be evicted again. */
  committed(seal: number): void {
    for (const [id, s] of this.inFlight) if (s <= seal) this.inFlight.delete(id);
  }

  private load(key: string, state: string): unknown {
    const bytes = this.backend.getSync(this.keyspace.state(key, state));
    if (bytes === undefined) return ABSENT;
    try {
      return decodeMsgpack(bytes);
    } catch (cause) {
      throw millraceError(ErrorCodes.STATE_CORRUPTED, `state "${state}" of key "${key}" cannot be decoded`, {
        cause,
        disposition: 'task-corrupted',
      });
    }
  }

  /** Drops clean entries, oldest loaded first, but never `keep` (the entry being read). */
  private evict(keep: string): void {
    const target = Math.floor(this.cacheEntries * 0.9);
    for (const id of this.values.keys()) {
      if (this.values.size <= target) return;
      if (id !== keep && !this.dirty.has(id) && !this.inFlight.has(id)) this.values.delete(id);
    }
  }
}

function cacheKey(key: string, state: string): string {
  return `${state}\u0000${key}`;
}
