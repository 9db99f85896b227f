/**
 * (c) millrace's fused stateless chain: filter + map on the preloaded
 * millrace stream, one output per input to a millrace stream, with the
 * node's default checkpoints (every second, transactional sink).
 */
import { job, sink, source } from '../../index.js';
import type { BenchEvent } from '../events.js';
import type { BenchContext, Scenario, ScenarioResult } from '../scenario.js';
import { CHECKPOINT_EVERY_SECOND, runMillraceJob } from './millrace-run.js';

export const scenario: Scenario = {
  id: 'c',
  title: 'millrace stateless chain: filter + map, fused, checkpoints every 1 s (transactional sink), 8 tasks',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const definition = job(`stateless_${ctx.runId}`)
      .from(source.stream<BenchEvent>(ctx.inputStream))
      .filter((e) => e.amount > 0)
      .map((e) => ({ id: e.id, userId: e.userId, cents: Math.round(e.amount * 100), currency: e.currency }))
      .to(sink.stream(ctx.outputStream));
    const run = await runMillraceJob(ctx, definition, CHECKPOINT_EVERY_SECOND);
    return { events: ctx.events, seconds: run.seconds, checkpoints: run.checkpoints, verified: run.verified.join('; ') };
  },
};
