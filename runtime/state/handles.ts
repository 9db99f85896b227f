/**
 * Binds the state a keyed actor declared to its task's store: each handle
 * reads and writes the entry of the key being processed.
 */
import type {
  ListState,
  ListStateSpec,
  MapState,
  ReducingState,
  ReducingStateSpec,
  StateHandles,
  StateSpec,
  StateSpecs,
  ValueState,
  ValueStateSpec,
} from '../api/state.js';
import type { KeyedStore } from './keyed-store.js';

export type CurrentKey = () => string;

export function bindState<S extends StateSpecs>(specs: S, store: KeyedStore, currentKey: CurrentKey): StateHandles<S> {
  const handles: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) handles[name] = bindOne(name, spec, store, currentKey);
  return Object.freeze(handles) as StateHandles<S>;
}

function bindOne(name: string, spec: StateSpec, store: KeyedStore, currentKey: CurrentKey): unknown {
  switch (spec.kind) {
    case 'value':
      return valueHandle(name, spec, store, currentKey);
    case 'map':
      return mapHandle(name, store, currentKey);
    case 'list':
      return listHandle(name, spec, store, currentKey);
    case 'reducing':
      return reducingHandle(name, spec, store, currentKey);
  }
}

function valueHandle<T>(name: string, spec: ValueStateSpec<T>, store: KeyedStore, key: CurrentKey): ValueState<T> {
  const fallback = () => (typeof spec.default === 'object' && spec.default !== null ? structuredClone(spec.default) : spec.default) as T;
  return {
    get: () => {
      const v = store.read(key(), name);
      return v === undefined ? fallback() : (v as T);
    },
    set: (value) => store.write(key(), name, value),
    clear: () => store.write(key(), name, undefined),
  };
}

/** Map state is stored as an array of [key, value] pairs so number keys survive msgpack. */
function mapHandle<K, V>(name: string, store: KeyedStore, key: CurrentKey): MapState<K, V> {
  const cache = new WeakMap<object, Map<K, V>>();
  const current = (): Map<K, V> | undefined => {
    const stored = store.read(key(), name) as [K, V][] | Map<K, V> | undefined;
    if (stored === undefined) return undefined;
    if (stored instanceof Map) return stored;
    let m = cache.get(stored);
    if (!m) {
      m = new Map(stored);
      store.recache(key(), name, m); // keep the decoded Map in the cache, not the pairs
      cache.set(stored, m);
    }
    return m;
  };
  const ensure = (): Map<K, V> => {
    const m = current();
    if (m) return m;
    const created = new Map<K, V>();
    store.write(key(), name, created);
    return created;
  };
  return {
    get: (k) => current()?.get(k),
    has: (k) => current()?.has(k) ?? false,
    set: (k, v) => {
      const m = ensure();
      m.set(k, v);
      store.write(key(), name, m);
    },
    delete: (k) => {
      const m = current();
      if (!m || !m.delete(k)) return false;
      store.write(key(), name, m.size === 0 ? undefined : m);
      return true;
    },
    entries: () => (current() ?? new Map<K, V>()).entries(),
    get size() {
      return current()?.size ?? 0;
    },
    clear: () => store.write(key(), name, undefined),
  };
}

function listHandle<T>(name: string, _spec: ListStateSpec<T>, store: KeyedStore, key: CurrentKey): ListState<T> {
  const current = () => store.read(key(), name) as T[] | undefined;
  return {
    get: () => current() ?? [],
    add: (value) => {
      const l = current();
      if (l) l.push(value);
      store.write(key(), name, l ?? [value]);
    },
    update: (values) => store.write(key(), name, values.length === 0 ? undefined : [...values]),
    clear: () => store.write(key(), name, undefined),
  };
}

function reducingHandle<T>(name: string, spec: ReducingStateSpec<T>, store: KeyedStore, key: CurrentKey): ReducingState<T> {
  return {
    get: () => store.read(key(), name) as T | undefined,
    add: (value) => {
      const acc = store.read(key(), name) as T | undefined;
      store.write(key(), name, acc === undefined ? value : spec.reduce(acc, value));
    },
    clear: () => store.write(key(), name, undefined),
  };
}
