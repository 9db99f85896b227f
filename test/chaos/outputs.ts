/**
 * Reads a chaos job's output stream after the run: the records in stream
 * order, and the ones not where the wire format puts them (the `Mr-Key`
 * header is the record's key and the subject is that key's partition).
 */
import type { NatsConnection } from 'nats';
import { decodeRecordValue, partitionOf } from '../../index.js';
import { MAX_EXAMPLES, type Finding } from './checker.js';
import { readStream } from './stream-reader.js';

export interface OutputRead<T> {
  readonly records: T[];
  /** Stream sequence of each record. */
  readonly seqs: number[];
  /** When JetStream stored each record (epoch ms). */
  readonly storedAt: number[];
  readonly misrouted: Finding<string>;
}

/** Reads `stream` (of `partitions` partitions); `keyOf` gives the key each record must be published under. */
export async function readOutputs<T>(
  nc: NatsConnection,
  stream: string,
  partitions: number,
  keyOf: (record: T) => string,
  timeoutMs?: number,
): Promise<OutputRead<T>> {
  const records: T[] = [];
  const seqs: number[] = [];
  const storedAt: number[] = [];
  const misrouted = { count: 0, examples: [] as string[] };
  await readStream(
    nc,
    stream,
    (msg) => {
      const record = decodeRecordValue<T>(msg.data);
      records.push(record);
      seqs.push(msg.seq);
      storedAt.push(Math.round(msg.info.timestampNanos / 1e6));
      const key = keyOf(record);
      const header = msg.headers?.get('Mr-Key');
      const subject = `mr.${stream}.${partitionOf(key, partitions)}`;
      if (header !== key || msg.subject !== subject) {
        misrouted.count++;
        if (misrouted.examples.length < MAX_EXAMPLES) misrouted.examples.push(`seq ${msg.seq}: key ${key}, Mr-Key ${header}, subject ${msg.subject}`);
      }
    },
    { timeoutMs },
  );
  return { records, seqs, storedAt, misrouted };
}

/**
 * Where and when each copy of the given ids was stored: "e7: seq 120 at
 * t+25.1 s, seq 90007 at t+171.0 s". Tells a duplicate published again after
 * JetStream's duplicate window from one published twice at once.
 */
export function describeCopies<T extends { id: string }>(read: OutputRead<T>, ids: readonly string[], startedAt: number): string[] {
  const wanted = new Map(ids.map((id) => [id, [] as string[]]));
  read.records.forEach((r, i) => wanted.get(r.id)?.push(`seq ${read.seqs[i]} at t+${((read.storedAt[i]! - startedAt) / 1000).toFixed(1)} s`));
  return [...wanted].map(([id, copies]) => `${id}: ${copies.join(', ')}`);
}

/**
 * Which of the events `e0` … `e<count - 1>` have an output in `stream`, read
 * incrementally: each `update()` reads only what was stored since the last.
 */
export class IdCoverage {
  private readonly seen: Uint8Array;
  private distinct = 0;
  private nextSeq = 1;

  constructor(
    private readonly nc: NatsConnection,
    private readonly stream: string,
    count: number,
  ) {
    this.seen = new Uint8Array(count);
  }

  /** Reads the records stored since the last call; resolves with how many events have an output. */
  async update(): Promise<number> {
    const { lastSeq } = await readStream(
      this.nc,
      this.stream,
      (msg) => {
        const i = Number(decodeRecordValue<{ id: string }>(msg.data).id.slice(1));
        if (Number.isInteger(i) && i >= 0 && i < this.seen.length && this.seen[i] === 0) {
          this.seen[i] = 1;
          this.distinct++;
        }
      },
      { fromSeq: this.nextSeq },
    );
    this.nextSeq = Math.max(this.nextSeq, lastSeq + 1);
    return this.distinct;
  }
}
