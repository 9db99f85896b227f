/**
 * The keyed running count every keyed scenario runs: value state per userId,
 * one output `{ userId, count, id }` per input. Shared by the in-process
 * scenarios (d, e) and the job module a node process loads (f).
 */
import { job, keyed, sink, source, value, type JobDefinition } from '../index.js';
import type { BenchEvent } from './events.js';

/** One output per input: the key's count after it. */
export interface BenchCount {
  userId: string;
  count: number;
  id: number;
}

export const Count = keyed({
  name: 'count',
  state: { n: value<number>({ default: 0 }) },
  onRecord(e: BenchEvent, ctx): BenchCount {
    const count = ctx.state.n.get() + 1;
    ctx.state.n.set(count);
    return { userId: e.userId, count, id: e.id };
  },
});

/** `name` counts millrace stream `input` per userId into millrace stream `output`. */
export function keyedCountJob(name: string, input: string, output: string): JobDefinition {
  return job(name).from(source.stream<BenchEvent>(input)).process(Count).to(sink.stream(output));
}
