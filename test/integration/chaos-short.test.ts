/**
 * The short chaos run (issue 3): 100,000 events through two jobs at once on
 * real millrace node processes and a real nats-server, while a seeded fault
 * plan SIGKILLs nodes (one restart on a wiped data dir), SIGSTOPs the
 * leader past its lease and SIGKILLs the nats-server; then every output is
 * checked against references computed from the inputs alone. The long run
 * is `npm run chaos` (test/chaos/run.ts); both use test/chaos/harness.ts.
 *
 * CHAOS_SEED replays another fault plan; CHAOS_NODES sets the node count.
 */
import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatReport } from '../chaos/checker.js';
import { formatGroupReport } from '../chaos/group-checker.js';
import { runChaos } from '../chaos/harness.js';
import { formatInputCheck } from '../chaos/input-check.js';

const SEED = Number(process.env.CHAOS_SEED ?? 0x5c4a05);
const NODES = Number(process.env.CHAOS_NODES ?? 3);
const EVENTS = 100_000;
const KILLS = 3;

test('chaos, short: 100k events, two jobs, node kills, a leader pause and a nats-server SIGKILL: exactly once', async (t) => {
  t.timeout(300_000);
  const lines: string[] = [];
  const run = runChaos({
    events: EVENTS,
    nodes: NODES,
    seed: SEED,
    kills: KILLS,
    wipes: 1,
    leaderPauses: 1,
    natsRestarts: ['SIGKILL'],
    // Fewer partitions than the long run: a restart restores every task of a job one after another.
    subjects: 3,
    partitions: { key: 4, group: 3, output: 4 },
    gapMs: [3_000, 6_000],
    maxDownMs: 1_000,
    progressWaitMs: 30_000,
    leaseTtlMs: 5_000,
    checkpointIntervalMs: 200,
    // Typically 2-3 minutes on 2 vCPUs; the bound leaves room for a loaded machine, then fails with the report.
    timeoutMs: 270_000,
    drainTimeoutMs: 120_000,
    keepLogsDir: join(tmpdir(), 'millrace-chaos-failures'),
    log: (line) => lines.push(line),
  });
  // The run's log (plan, faults, figures, reports) goes out even when the harness itself throws.
  const result = await run.finally(() => t.log(lines.join('\n')));

  t.true(result.outputsComplete, `every output arrived: ${result.failures.join('; ')}`);
  const v = result.verdict;
  t.true(v.input.ok, formatInputCheck(v.input));
  t.true(v.count.ok, `keyed count job — ${formatReport(v.count)}`);
  t.true(v.groups.ok, `two-stage job, per key — ${formatReport(v.groups)}`);
  t.true(v.groupCounts.ok, `two-stage job, per group — ${formatGroupReport(v.groupCounts)}`);
  t.is(v.countMisrouted.count, 0, 'keyed count outputs under another partition than their key');
  t.is(v.groupsMisrouted.count, 0, 'two-stage outputs under another partition than their group');
  t.true(result.tally.kills >= KILLS, `node kills carried out: ${result.tally.kills}`);
  t.is(result.tally.natsRestarts, 1, 'the nats-server restart was carried out');
  t.is(result.tally.leaderPauses, 1, 'the leader pause was carried out');
  t.deepEqual(result.failures, [], 'the run failed');
});
