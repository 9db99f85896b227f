/**
 * Keyed state declarations and the handles a keyed actor uses to read and
 * write them. Every state of one key is one entry in the state backend;
 * reads are synchronous (served from the task's cache, loaded on a miss).
 */

/** Declares a single value per key. */
export interface ValueStateSpec<T> {
  readonly kind: 'value';
  readonly default: T | undefined;
}
/** Declares a map per key (stored as one entry: keep it small per key). */
export interface MapStateSpec<K, V> {
  readonly kind: 'map';
  /** phantom fields for inference */
  readonly __types?: [K, V];
}
/** Declares an append-mostly list per key (stored as one entry). */
export interface ListStateSpec<T> {
  readonly kind: 'list';
  readonly __types?: T;
}
/** Declares a value folded with `reduce` as elements are added. */
export interface ReducingStateSpec<T> {
  readonly kind: 'reducing';
  readonly reduce: (accumulator: T, value: T) => T;
}

export type StateSpec = ValueStateSpec<any> | MapStateSpec<any, any> | ListStateSpec<any> | ReducingStateSpec<any>;
export type StateSpecs = Record<string, StateSpec>;

export interface ValueState<T> {
  /** The value, or the declared default when none is set. */
  get(): T;
  set(value: T): void;
  clear(): void;
}
export interface MapState<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): void;
  has(key: K): boolean;
  delete(key: K): boolean;
  entries(): IterableIterator<[K, V]>;
  readonly size: number;
  clear(): void;
}
export interface ListState<T> {
  /** A read-only view; use `add`/`update` to change it. */
  get(): readonly T[];
  add(value: T): void;
  update(values: readonly T[]): void;
  clear(): void;
}
export interface ReducingState<T> {
  get(): T | undefined;
  add(value: T): void;
  clear(): void;
}

export type StateHandle<S extends StateSpec> =
  S extends ValueStateSpec<infer T> ? ValueState<T>
  : S extends MapStateSpec<infer K, infer V> ? MapState<K, V>
  : S extends ListStateSpec<infer T> ? ListState<T>
  : S extends ReducingStateSpec<infer T> ? ReducingState<T>
  : never;

export type StateHandles<S extends StateSpecs> = { readonly [N in keyof S]: StateHandle<S[N]> };

/** A value per key; `get()` returns `options.default` until set. */
export function value<T>(options: { default?: T } = {}): ValueStateSpec<T> {
  return { kind: 'value', default: options.default };
}
export function map<K extends string | number, V>(): MapStateSpec<K, V> {
  return { kind: 'map' };
}
export function list<T>(): ListStateSpec<T> {
  return { kind: 'list' };
}
export function reducing<T>(reduce: (accumulator: T, value: T) => T): ReducingStateSpec<T> {
  return { kind: 'reducing', reduce };
}
