/**
 * (g) Scaling out and losing a node (issue 4, decision 005). A real node
 * process runs the keyed count (job bench/jobs/keyed-count.ts, checkpoints
 * every second, transactional sink) over an input of 4 partitions, and
 * builds 100,000 keys of state in each of its 4 tasks. With a trickle of
 * events flowing:
 *
 *   1. a second node joins: the coordinator hands 2 tasks over to it at a
 *      checkpoint. Pause of a moved task = its last record on the old node
 *      (the seal it stopped at) → its first record on the new node, from
 *      the two nodes' log lines; the new node restores 100,000 keys per task
 *      from the snapshot store.
 *   2. the second node is killed with SIGKILL: its tasks go back to the first
 *      node once its membership entry expires (cluster.memberTimeoutMs, 5 s
 *      by default), which restarts the job from its last checkpoint. Time =
 *      SIGKILL → the first output stored of a key of a dead node's task.
 *
 * Verified at the end: exactly one output per input, every key's final count
 * 1 plus its trickle events.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type JetStreamManager } from 'nats';
import { partitionOf } from '../../runtime/wire/partitioner.js';
import { NodeProcess, type LogEntry } from '../node-process.js';
import type { BenchContext, HandoffResult, Scenario } from '../scenario.js';
import { createMillraceStream } from '../streams.js';
import { Trickle } from '../trickle.js';
import { bounded, buildState, drainAndVerify, kill } from './recovery-after-kill.js';

const JOB_MODULE = fileURLToPath(new URL('../jobs/keyed-count.js', import.meta.url));
const PARTITIONS = 4;
const KEYS_PER_TASK = 100_000;
const KEYS = PARTITIONS * KEYS_PER_TASK;
const TRICKLE_PER_SECOND = 200;
/** The defaults, spelled out. */
const NODE_ENV: Readonly<Record<string, string>> = Object.freeze({
  MILLRACE_CHECKPOINT_INTERVAL_MS: '1000',
  MILLRACE_CHECKPOINT_SINK_MODE: 'transactional',
  MILLRACE_CLUSTER_MEMBER_TIMEOUT_MS: '5000',
});
const START_TIMEOUT_MS = 30_000;
const HANDOFF_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 20_000;
/** Before each change the job runs this long with the trickle. */
const STEADY_MS = 3_000;

export const scenario: Scenario = {
  id: 'g',
  title: `handoff and node loss: keyed count, ${PARTITIONS} tasks × ${KEYS_PER_TASK.toLocaleString('en-US')} keys, two node processes, checkpoints every 1 s`,
  async run(ctx: BenchContext): Promise<HandoffResult> {
    const nc = await connect({ servers: ctx.natsUrl });
    const nodes: NodeProcess[] = [];
    let trickle: Trickle | undefined;
    try {
      const jsm = await nc.jetstreamManager();
      const input = `${ctx.runId}_in`;
      await createMillraceStream(jsm, input, PARTITIONS);
      const job = `handoff_${ctx.runId}`;
      const start = (name: string) => {
        const node = new NodeProcess({
          natsUrl: ctx.natsUrl,
          dataDir: join(ctx.workDir, name),
          nodeId: `${ctx.runId}_${name}`,
          job: JOB_MODULE,
          env: { ...NODE_ENV, BENCH_JOB: job, BENCH_INPUT_STREAM: input, BENCH_OUTPUT_STREAM: ctx.outputStream },
          logFile: join(ctx.workDir, `${name}.log`),
        });
        nodes.push(node);
        return node;
      };
      const first = start('a');
      await first.waitForLog((e) => e.msg === 'node started', START_TIMEOUT_MS, '"node started"');
      await buildState(nc, jsm, { input, partitions: PARTITIONS, output: ctx.outputStream, keys: KEYS }, first);
      trickle = new Trickle(nc, { stream: input, partitions: PARTITIONS, keys: KEYS, firstId: KEYS, perSecond: TRICKLE_PER_SECOND });
      await sleep(STEADY_MS);

      // 1. A second node joins: half the tasks move to it.
      const second = start('b');
      const done = await first.waitForLog((e) => e.msg === 'handoff done', HANDOFF_TIMEOUT_MS, '"handoff done"');
      const moved = await movedPauses(first, second, Number(done.moved));
      await sleep(STEADY_MS);

      // 2. The second node is killed: its tasks restart on the first once its membership entry expires.
      const deadTasks = new Set(moved.map((m) => Number(m.task.split('/').at(-1))));
      const killedAt = await kill(second);
      const deadNodeMs = await firstOutputOf(jsm, ctx.outputStream, deadTasks, killedAt, first);
      const restart = first.entries.findLast((e) => e.msg === 'new run of the job');

      const verified = await drainAndVerify(nc, jsm, { stream: ctx.outputStream, partitions: ctx.partitions, keys: KEYS }, trickle, first);
      return {
        kind: 'handoff',
        keysPerTask: KEYS_PER_TASK,
        tasks: PARTITIONS,
        moved,
        handoffMs: Number(done.ms),
        deadNodeMs,
        restartWhy: typeof restart?.why === 'string' ? restart.why : undefined,
        verified,
      };
    } finally {
      trickle?.close();
      for (const node of nodes) node.kill('SIGKILL');
      await Promise.all(nodes.map((n) => bounded(n.exited, EXIT_TIMEOUT_MS, `node ${n.pid} to exit`).catch(() => undefined)));
      await nc.close();
    }
  },
};

/** Each moved task's hand-over on `from` → its first record on `to`. */
async function movedPauses(from: NodeProcess, to: NodeProcess, count: number): Promise<HandoffResult['moved']> {
  const resumed = (task: unknown) => (e: LogEntry) => e.msg === 'moved task processes records' && e.task === task;
  const handed = from.entries.filter((e) => e.msg === 'task handed over').slice(-count);
  const out: HandoffResult['moved'] = [];
  for (const h of handed) {
    const first = await to.waitForLog(resumed(h.task), HANDOFF_TIMEOUT_MS, `the first record of ${String(h.task)}`);
    const restored = to.entries.findLast((e) => e.msg === 'moved tasks started');
    out.push({ task: String(h.task), pauseMs: Number(first.firstRecordAt) - Number(h.handedOverAt), restoredFrom: JSON.stringify(restored?.restoredFrom ?? {}) });
  }
  return out;
}

/** SIGKILL → the server time of the first output stored after it for a key of one of `tasks` (input partitions). */
async function firstOutputOf(
  jsm: JetStreamManager,
  stream: string,
  tasks: ReadonlySet<number>,
  killedAt: number,
  survivor: NodeProcess,
): Promise<number> {
  await sleep(100); // what the dead node had in its socket is stored by now; the survivor cannot have restarted its tasks yet
  let next = (await jsm.streams.info(stream)).state.last_seq + 1;
  const deadline = Date.now() + HANDOFF_TIMEOUT_MS;
  for (;;) {
    const last = (await jsm.streams.info(stream)).state.last_seq;
    for (; next <= last; next++) {
      const m = await jsm.streams.getMessage(stream, { seq: next });
      const key = m.header.get('Mr-Key');
      if (m.time.getTime() > killedAt && tasks.has(partitionOf(key, PARTITIONS))) return m.time.getTime() - killedAt;
    }
    if (survivor.exitStatus) throw survivor.failure('exited after the other node was killed');
    if (Date.now() > deadline) throw survivor.failure(`stored no output of the dead node's tasks within ${HANDOFF_TIMEOUT_MS} ms`);
    await sleep(20);
  }
}
