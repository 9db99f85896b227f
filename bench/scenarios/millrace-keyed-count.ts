/**
 * (d) millrace's keyed running count: a keyed actor with value state per
 * userId, state in LevelDB committed with the input positions, one output
 * per input carrying the running count.
 */
import { connect } from 'nats';
import { job, keyed, sink, source, value } from '../../index.js';
import { expectedCounts, type BenchEvent } from '../events.js';
import type { BenchContext, Scenario, ScenarioResult } from '../scenario.js';
import { readFinalCounts, verifyCounts } from '../verify.js';
import { runMillraceJob } from './millrace-run.js';

const Count = keyed({
  name: 'count',
  state: { n: value<number>({ default: 0 }) },
  onRecord(e: BenchEvent, ctx) {
    const count = ctx.state.n.get() + 1;
    ctx.state.n.set(count);
    return { userId: e.userId, count, id: e.id };
  },
});

export const scenario: Scenario = {
  id: 'd',
  title: 'millrace keyed running count: value state in LevelDB, 8 tasks',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const definition = job(`count_${ctx.runId}`).from(source.stream<BenchEvent>(ctx.inputStream)).process(Count).to(sink.stream(ctx.outputStream));
    const run = await runMillraceJob(ctx, definition);
    const nc = await connect({ servers: ctx.natsUrl });
    try {
      const counts = await readFinalCounts(nc.jetstream(), await nc.jetstreamManager(), ctx.outputStream, ctx.partitions);
      run.verified.push(verifyCounts(counts, expectedCounts(ctx.events), 'output counts'));
    } finally {
      await nc.close();
    }
    return { events: ctx.events, seconds: run.seconds, verified: run.verified.join('; ') };
  },
};
