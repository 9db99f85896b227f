/**
 * Runs a millrace job in this process against the bench's input stream and
 * times it from job start until every input is processed and committed
 * (state and position in LevelDB, outputs acknowledged, inputs acked).
 */
import { connect } from 'nats';
import { startNode, type JobDefinition } from '../../index.js';
import type { BenchContext } from '../scenario.js';
import { verifyConsumerDone, verifyStreamCount } from '../verify.js';

export interface MillraceRun {
  seconds: number;
  /** Checks shared by every millrace scenario. */
  verified: string[];
}

export async function runMillraceJob(ctx: BenchContext, definition: JobDefinition): Promise<MillraceRun> {
  const node = await startNode({ nats: { servers: [ctx.natsUrl] }, dataDir: ctx.workDir, logLevel: 'warn', nodeId: ctx.runId });
  let seconds: number;
  try {
    ctx.timer.start();
    await node.runJob(definition);
    for (;;) {
      const tasks = node.tasks();
      const processed = tasks.reduce((n, t) => n + t.processed, 0);
      if (processed >= ctx.events && tasks.every((t) => t.caughtUp)) break;
      const failed = tasks.find((t) => t.state === 'failed');
      if (failed) throw new Error(`task ${failed.id} failed`);
      await new Promise((r) => setTimeout(r, 5));
    }
    seconds = ctx.timer.stop();
  } finally {
    await node.stop();
  }
  const nc = await connect({ servers: ctx.natsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    const verified = [await verifyStreamCount(jsm, ctx.outputStream, ctx.events)];
    for (let p = 0; p < ctx.partitions; p++) verified.push(await verifyConsumerDone(jsm, ctx.inputStream, `mr-${definition.name}-s0-${p}`));
    return { seconds, verified: [verified[0]!, `${ctx.partitions} consumers acked to the end`] };
  } finally {
    await nc.close();
  }
}
