/**
 * The chaos run's input: seeded events `{ id, key, seq }` with unique ids and
 * seqs 1, 2, 3… per key, each key on one subject of the input stream (so one
 * source partition reads a key's events in order), and the reference the
 * checker compares with, computed here from the events alone.
 */
import { partitionOf } from '../../index.js';
import { random } from '../../examples/transactions/generator.js';
import { groupOf, keyName, type ChaosEvent } from '../fixtures/chaos-shape.js';

export interface InputOptions {
  /** Number of events. */
  readonly events: number;
  /** Number of distinct keys drawn from (skewed: low key numbers are hotter). */
  readonly keys: number;
  /** Number of groups of the two-stage job. */
  readonly groups: number;
  /** Subjects of the input stream: `<stream>.p0` … */
  readonly subjects: number;
  readonly seed: number;
}

export interface ChaosInputs {
  readonly events: readonly ChaosEvent[];
  /** The subject tokens, `p0` …; the stream's subjects are `<stream>.<token>`. */
  readonly subjectTokens: readonly string[];
  /** Index into `subjectTokens` of each event. */
  readonly subjectOf: Uint16Array;
  /** Group of each event's key. */
  readonly groupOf: (key: string) => string;
}

/** Generates the events of a run; the same options give the same events. */
export function generateInputs(o: InputOptions): ChaosInputs {
  const next = random(o.seed);
  const seqs = new Map<string, number>();
  const events: ChaosEvent[] = new Array(o.events);
  const subjectOf = new Uint16Array(o.events);
  const subjectTokens = Array.from({ length: o.subjects }, (_, i) => `p${i}`);
  const subjectOfKey = new Map<string, number>();
  for (let i = 0; i < o.events; i++) {
    const r = next();
    const key = keyName(Math.floor(r * r * o.keys));
    const seq = (seqs.get(key) ?? 0) + 1;
    seqs.set(key, seq);
    events[i] = { id: `e${i}`, key, seq };
    let subject = subjectOfKey.get(key);
    // Another hash input than the job's keyBy, so every source partition feeds every keyed partition.
    if (subject === undefined) subjectOfKey.set(key, (subject = partitionOf(`subject/${key}`, o.subjects)));
    subjectOf[i] = subject;
  }
  return { events, subjectTokens, subjectOf, groupOf: (key) => groupOf(key, o.groups) };
}
