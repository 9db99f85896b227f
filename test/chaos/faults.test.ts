/** The fault plan is a function of its seed: the same seed replays the same faults. */
import test from 'ava';
import { formatPlan, planFaults, plannedDurationMs, type FaultPlanOptions } from './faults.js';

const OPTIONS: FaultPlanOptions = {
  seed: 42,
  nodes: 3,
  kills: 12,
  wipes: 2,
  leaderPauses: 2,
  pauseMs: 8_000,
  natsRestarts: ['SIGTERM', 'SIGKILL'],
  gapMs: [4_000, 9_000],
  maxDownMs: 1_500,
};

test('the same seed gives the same plan; another seed another one', (t) => {
  t.deepEqual(planFaults(OPTIONS), planFaults(OPTIONS));
  t.notDeepEqual(planFaults(OPTIONS), planFaults({ ...OPTIONS, seed: 43 }));
});

test('the plan has every fault asked for, within the bounds', (t) => {
  const plan = planFaults(OPTIONS);
  const kills = plan.filter((f) => f.kind === 'kill');
  t.is(kills.length, 12);
  t.is(kills.filter((f) => f.wipe).length, 2);
  t.true(kills.every((f) => f.node >= 0 && f.node < 3 && f.downMs >= 0 && f.downMs <= 1_500));
  t.is(plan.filter((f) => f.kind === 'pause-leader').length, 2);
  t.deepEqual(plan.flatMap((f) => (f.kind === 'nats-restart' ? [f.signal] : [])).sort(), ['SIGKILL', 'SIGTERM']);
  t.true(plan.every((f) => f.gapMs >= 4_000 && f.gapMs <= 9_000));
  t.true(plannedDurationMs(plan) >= 16 * 4_000 + 2 * 8_000);
  t.is(formatPlan(plan, (i) => `n${i}`).split('\n').length, plan.length);
});

test('more wipes than kills is a TypeError', (t) => {
  t.throws(() => planFaults({ ...OPTIONS, kills: 1, wipes: 2 }), { instanceOf: TypeError });
});
