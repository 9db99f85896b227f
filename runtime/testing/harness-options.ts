/** The options of `keyedHarness()`: documented defaults, checked once, then frozen. */
import type { Logger } from 'pino';
import type { StateBackend } from '../state/backend.js';
import type { HarnessSnapshot } from './snapshot.js';

export interface KeyedHarnessOptions {
  /**
   * The working-state store of the harness's task. Pass your own (for
   * instance a LevelDB one) to run the operator against it; the harness does
   * not close a backend it was given.
   * @default a fresh memory backend, closed by `close()`
   */
  readonly backend?: StateBackend;
  /** Starts from the committed state, timers, position and clock of an earlier harness's `snapshot()`. @default none */
  readonly restoreFrom?: HarnessSnapshot;
  /** The job name in state keys and message ids. @default the snapshot's, else DEFAULT_HARNESS_JOB */
  readonly job?: string;
  /** The partition the task runs. @default the snapshot's, else 0 */
  readonly partition?: number;
  /** Partitions of the output stream: what an output's subject is chosen among. @default 1 */
  readonly outputPartitions?: number;
  /** Processing time at start, ms since the epoch. @default the snapshot's, else 0 */
  readonly startTime?: number;
  /** Decoded state entries the task caches (the node's `task.stateCacheEntries`). @default 200000 */
  readonly stateCacheEntries?: number;
  /** Records between two commits (the node's `task.commitEveryRecords`); the harness also commits whenever it reads state. @default 5000 */
  readonly commitEveryRecords?: number;
  /** Where the task logs. @default silent */
  readonly logger?: Logger;
}

export const DEFAULT_HARNESS_JOB = 'harness';
export const DEFAULT_OUTPUT_PARTITIONS = 1;
export const DEFAULT_STATE_CACHE_ENTRIES = 200_000;
export const DEFAULT_COMMIT_EVERY_RECORDS = 5000;

export interface ResolvedHarnessOptions {
  readonly backend: StateBackend | undefined;
  readonly restoreFrom: HarnessSnapshot | undefined;
  readonly job: string;
  readonly partition: number;
  readonly outputPartitions: number;
  readonly startTime: number;
  readonly stateCacheEntries: number;
  readonly commitEveryRecords: number;
  readonly logger: Logger | undefined;
}

/** Applies defaults; throws a TypeError naming the first bad field. */
export function resolveHarnessOptions(operator: string, options: KeyedHarnessOptions): ResolvedHarnessOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('keyedHarness(): options must be an object');
  const snapshot = options.restoreFrom;
  if (snapshot !== undefined) {
    if (!Array.isArray(snapshot?.entries)) throw new TypeError('keyedHarness(): restoreFrom must be a snapshot() of a harness');
    if (snapshot.operator !== operator) {
      throw new TypeError(`keyedHarness(): restoreFrom is a snapshot of operator "${snapshot.operator}", not "${operator}"`);
    }
    for (const field of ['job', 'partition'] as const) {
      if (options[field] !== undefined && options[field] !== snapshot[field]) {
        throw new TypeError(`keyedHarness(): ${field} ${JSON.stringify(options[field])} differs from the snapshot's ${JSON.stringify(snapshot[field])}`);
      }
    }
  }
  const resolved: ResolvedHarnessOptions = {
    backend: options.backend,
    restoreFrom: snapshot,
    job: options.job ?? snapshot?.job ?? DEFAULT_HARNESS_JOB,
    partition: integer('partition', options.partition ?? snapshot?.partition ?? 0, 0),
    outputPartitions: integer('outputPartitions', options.outputPartitions ?? DEFAULT_OUTPUT_PARTITIONS, 1),
    startTime: integer('startTime', options.startTime ?? snapshot?.processingTime ?? 0, 0),
    stateCacheEntries: integer('stateCacheEntries', options.stateCacheEntries ?? DEFAULT_STATE_CACHE_ENTRIES, 0),
    commitEveryRecords: integer('commitEveryRecords', options.commitEveryRecords ?? DEFAULT_COMMIT_EVERY_RECORDS, 1),
    logger: options.logger,
  };
  if (resolved.backend !== undefined && typeof resolved.backend.getSync !== 'function') {
    throw new TypeError('keyedHarness(): backend must be a StateBackend');
  }
  return Object.freeze(resolved);
}

function integer(field: string, value: unknown, min: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw new TypeError(`keyedHarness(): ${field} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value as number;
}
