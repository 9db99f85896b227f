/**
 * (d) millrace's keyed running count with checkpoints every second: value
 * state per userId in LevelDB, one output per input carrying the running
 * count, published when its checkpoint commits (transactional sink).
 */
import { connect } from 'nats';
import { expectedCounts } from '../events.js';
import { keyedCountJob } from '../keyed-count.js';
import type { BenchContext, Scenario, ScenarioResult } from '../scenario.js';
import { readFinalCounts, verifyCounts } from '../verify.js';
import { CHECKPOINT_EVERY_SECOND, runMillraceJob } from './millrace-run.js';

export const scenario: Scenario = {
  id: 'd',
  title: 'millrace keyed running count, checkpoints every 1 s (transactional sink), 8 tasks',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    return runKeyedCount(ctx, `count_${ctx.runId}`, CHECKPOINT_EVERY_SECOND);
  },
};

/** Runs the keyed count with `checkpoint` settings and checks the final count of every key in the outputs. */
export async function runKeyedCount(
  ctx: BenchContext,
  name: string,
  checkpoint: Parameters<typeof runMillraceJob>[2],
  task?: Parameters<typeof runMillraceJob>[3],
): Promise<ScenarioResult> {
  const run = await runMillraceJob(ctx, keyedCountJob(name, ctx.inputStream, ctx.outputStream), checkpoint, task);
  const nc = await connect({ servers: ctx.natsUrl });
  try {
    const counts = await readFinalCounts(nc.jetstream(), await nc.jetstreamManager(), ctx.outputStream, ctx.partitions);
    run.verified.push(verifyCounts(counts, expectedCounts(ctx.events), 'output counts'));
  } finally {
    await nc.close();
  }
  return { events: ctx.events, seconds: run.seconds, checkpoints: run.checkpoints, verified: run.verified.join('; ') };
}
