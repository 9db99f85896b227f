/**
 * What a harness snapshot holds and how it moves between backends: the
 * committed keyed state and timers of one operator partition and the input
 * position of its task — the entries a restarted task reads back.
 */
import type { StateBackend } from '../state/backend.js';
import { positionKey, statePrefix, timerPrefix } from '../state/keys.js';

/** The committed state of one keyed operator in one harness, as backend entries. */
export interface HarnessSnapshot {
  readonly job: string;
  readonly operator: string;
  readonly partition: number;
  /** The harness's processing time when the snapshot was taken, ms. */
  readonly processingTime: number;
  /** Raw backend entries (state, timers, input position); copies, safe to keep. */
  readonly entries: readonly (readonly [Uint8Array, Uint8Array])[];
}

/** Where an operator's entries live in a backend. */
export interface OperatorPlace {
  readonly job: string;
  readonly operator: string;
  readonly partition: number;
  /** The stage id whose input position is kept. */
  readonly stage: string;
}

/** Copies the committed entries of one operator partition out of `backend`. */
export async function captureEntries(backend: StateBackend, place: OperatorPlace): Promise<[Uint8Array, Uint8Array][]> {
  const entries: [Uint8Array, Uint8Array][] = [];
  for (const prefix of [statePrefix(place.job, place.operator, place.partition), timerPrefix(place.job, place.operator, place.partition)]) {
    for await (const [k, v] of backend.entries(prefix)) entries.push([new Uint8Array(k), new Uint8Array(v)]);
  }
  const position = backend.getSync(positionKey(place.job, place.stage, place.partition));
  if (position) entries.push([positionKey(place.job, place.stage, place.partition), new Uint8Array(position)]);
  return entries;
}

/** Writes a snapshot's entries into `backend` in one batch. */
export async function restoreEntries(backend: StateBackend, snapshot: HarnessSnapshot): Promise<void> {
  await backend.write(snapshot.entries.map(([key, value]) => ({ key: new Uint8Array(key), value: new Uint8Array(value) })));
}
