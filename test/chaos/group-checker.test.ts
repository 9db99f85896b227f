/**
 * The group half of the chaos checker against runs built here: what a
 * correct two-stage job writes, then one injected fault per test that must
 * land in its own category.
 */
import test from 'ava';
import { random } from '../../examples/transactions/generator.js';
import { GROUP_CHECK_NAMES, checkGroups, formatGroupReport, type GroupOutput, type GroupReport, type GroupedInput } from './group-checker.js';

const GROUPS = 5;

function inputs(count: number, seed: number): GroupedInput[] {
  const next = random(seed);
  return Array.from({ length: count }, (_, i) => ({ id: `e${i}`, group: `g${Math.floor(next() * GROUPS)}` }));
}

/** A correct job's outputs: each group counted in input order. */
function correct(ins: readonly GroupedInput[]): GroupOutput[] {
  const counts = new Map<string, number>();
  return ins.map(({ id, group }) => {
    const groupCount = (counts.get(group) ?? 0) + 1;
    counts.set(group, groupCount);
    return { id, group, groupCount };
  });
}

function failing(report: GroupReport): string[] {
  return GROUP_CHECK_NAMES.filter((name) => report[name].count > 0);
}

const INPUTS = inputs(2_000, 7);

test('a correct run passes', (t) => {
  const report = checkGroups(INPUTS, correct(INPUTS));
  t.true(report.ok, formatGroupReport(report));
  t.is(report.groups, GROUPS);
});

test('a lost record is a missing count and, at the end of its group, a wrong final state', (t) => {
  const outputs = correct(INPUTS);
  const middle = outputs.splice(500, 1)[0]!;
  let report = checkGroups(INPUTS, outputs);
  t.deepEqual(failing(report), ['counts']);
  t.deepEqual(report.counts.examples[0]!.missing, [middle.groupCount]);

  const last = correct(INPUTS);
  last.pop();
  report = checkGroups(INPUTS, last);
  t.deepEqual(failing(report), ['counts', 'finalState']);
});

test('a repeated id is left to checkRun: only its first occurrence is counted', (t) => {
  const outputs = correct(INPUTS);
  outputs.push(outputs.at(-1)!);
  t.true(checkGroups(INPUTS, outputs).ok);
  // An old record repeated at the end is the group's last output: the final state sees it.
  const stale = correct(INPUTS);
  stale.push(stale[10]!);
  t.deepEqual(failing(checkGroups(INPUTS, stale)), ['finalState']);
});

test('two ids with the same count of a group: repeated; a count above n: out of range', (t) => {
  const outputs = correct(INPUTS);
  const victim = outputs.findIndex((o, i) => i > 100 && o.group === 'g1');
  outputs[victim] = { ...outputs[victim]!, groupCount: outputs[victim]!.groupCount - 1 };
  let report = checkGroups(INPUTS, outputs);
  t.deepEqual(failing(report), ['counts', 'order']);
  t.deepEqual(report.counts.examples[0]!.repeated, [outputs[victim]!.groupCount]);

  const over = correct(INPUTS);
  const lastOfG1 = over.findLastIndex((o) => o.group === 'g1');
  over[lastOfG1] = { ...over[lastOfG1]!, groupCount: 10_000 };
  report = checkGroups(INPUTS, over);
  t.deepEqual(failing(report), ['counts', 'finalState']);
  t.deepEqual(report.counts.examples[0]!.outOfRange, [10_000]);
});

test('an output under another group is misgrouped and not counted', (t) => {
  const outputs = correct(INPUTS);
  const o = outputs[42]!;
  outputs[42] = { ...o, group: o.group === 'g0' ? 'g1' : 'g0' };
  const report = checkGroups(INPUTS, outputs);
  t.true(report.misgrouped.count === 1 && report.misgrouped.examples[0]!.expected === o.group);
  t.true(report.counts.count >= 1, 'its count is missing from its own group');
});

test('two outputs of a group swapped in the sink: an order error only', (t) => {
  const outputs = correct(INPUTS);
  const a = outputs.findIndex((o) => o.group === 'g2');
  const b = outputs.findIndex((o, i) => i > a && o.group === 'g2');
  [outputs[a], outputs[b]] = [outputs[b]!, outputs[a]!];
  const report = checkGroups(INPUTS, outputs);
  t.deepEqual(failing(report), ['order']);
});

test('unknown ids are ignored (checkRun reports them); duplicate input ids throw', (t) => {
  const outputs = [...correct(INPUTS), { id: 'nope', group: 'g0', groupCount: 1 }];
  t.true(checkGroups(INPUTS, outputs).ok);
  t.throws(() => checkGroups([...INPUTS, INPUTS[0]!], []), { instanceOf: TypeError });
});
