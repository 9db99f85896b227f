/**
 * Reads committed keyed state the way a handler would see it: through the
 * engine's own state handles (defaults, map pairs decoded to a Map) over a
 * fresh store on the backend, so nothing the task caches is involved.
 */
import type { ListStateSpec, MapStateSpec, ReducingStateSpec, StateSpec, ValueStateSpec } from '../api/state.js';
import type { StateBackend } from '../state/backend.js';
import { bindState } from '../state/handles.js';
import { KeyedStore } from '../state/keyed-store.js';
import { keyspace } from '../state/keys.js';

/** What `state()` returns for each kind of state: a value, a `Map`, an array, or the reduced value. */
export type StateValue<S extends StateSpec> =
  S extends ValueStateSpec<infer T> ? T
  : S extends MapStateSpec<infer K, infer V> ? Map<K, V>
  : S extends ListStateSpec<infer T> ? T[]
  : S extends ReducingStateSpec<infer T> ? T | undefined
  : never;

/** Only the entries of the one key read are loaded: a tiny cache is enough. */
const READER_CACHE_ENTRIES = 16;

export interface StatePlace {
  readonly job: string;
  readonly operator: string;
  readonly partition: number;
}

export function readCommittedState(backend: StateBackend, place: StatePlace, name: string, spec: StateSpec, key: string): unknown {
  const store = new KeyedStore(backend, keyspace(place.job, place.operator, place.partition), READER_CACHE_ENTRIES);
  const handle = bindState({ [name]: spec }, store, () => key)[name]!;
  switch (spec.kind) {
    case 'value':
    case 'reducing':
      return (handle as { get(): unknown }).get();
    case 'map':
      return new Map((handle as { entries(): Iterable<[unknown, unknown]> }).entries());
    case 'list':
      return [...(handle as { get(): readonly unknown[] }).get()];
  }
}
