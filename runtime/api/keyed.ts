import type { StateHandles, StateSpecs } from './state.js';

/** Schedules callbacks of the current key. */
export interface TimerService {
  /** Calls `onTimer(ts)` for the current key once the wall clock reaches `ts` (ms). One timer per (key, ts). */
  processingTime(ts: number): void;
  deleteProcessingTime(ts: number): void;
  /** The wall clock the task uses, in ms. */
  now(): number;
}

/** What a keyed actor's handlers see: the current key, its state, a way to emit. */
export interface KeyedContext<S extends StateSpecs, Out> {
  readonly key: string;
  readonly state: StateHandles<S>;
  readonly timers: TimerService;
  /** Event time of the record being processed (the timer's time in `onTimer`). */
  readonly timestamp: number;
  /** Sends `value` downstream, keyed by the current key unless `key` is given. */
  emit(value: Out, key?: string): void;
}

export interface KeyedDefinition<In, Out, S extends StateSpecs> {
  readonly kind: 'keyed';
  /** Names the operator's state in the store: keep it stable across deployments. */
  readonly name: string;
  readonly state: S;
  /**
   * Handles one record of the current key. Synchronous by design: one task
   * processes its partition in order, and state is read from memory.
   * Whatever it returns (a value, an array of values, or nothing) is emitted.
   */
  onRecord(record: In, ctx: KeyedContext<S, Out>): Out | readonly Out[] | void;
  /** Handles a processing-time timer of the current key. */
  onTimer?(ts: number, ctx: KeyedContext<S, Out>): Out | readonly Out[] | void;
}

const OPERATOR_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Defines a keyed actor: per-key state and the handlers that use it. */
export function keyed<In, Out, S extends StateSpecs = {}>(
  definition: Omit<KeyedDefinition<In, Out, S>, 'kind'>,
): KeyedDefinition<In, Out, S> {
  if (!OPERATOR_NAME.test(definition.name)) {
    throw new TypeError(`keyed(): name must match ${OPERATOR_NAME}, got ${JSON.stringify(definition.name)}`);
  }
  return { kind: 'keyed', ...definition };
}
