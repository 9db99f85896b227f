/**
 * (e) The keyed count of (d) without periodic checkpoints: the baseline
 * that (d)'s checkpoint overhead is measured against. A node cannot run
 * without a coordinator, so this is the nearest real configuration: a
 * checkpoint interval longer than any run, so only the final checkpoint
 * happens, and sink outputs published at once (see FINAL_CHECKPOINT_ONLY);
 * sources never wait for a commit (uncappedSources).
 */
import type { BenchContext, Scenario, ScenarioResult } from '../scenario.js';
import { runKeyedCount } from './millrace-keyed-count.js';
import { FINAL_CHECKPOINT_ONLY, uncappedSources } from './millrace-run.js';

export const scenario: Scenario = {
  id: 'e',
  title: 'millrace keyed running count, no periodic checkpoints (final one only, immediate sink), 8 tasks',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    return runKeyedCount(ctx, `count_${ctx.runId}`, FINAL_CHECKPOINT_ONLY, uncappedSources(ctx.events));
  },
};
