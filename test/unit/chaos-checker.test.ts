/**
 * The chaos checker against runs built here: seeded inputs, the outputs a
 * correct counting job would write, and one injected fault per test that must
 * be reported in its own category and nowhere else.
 */
import test, { type ExecutionContext } from 'ava';
import {
  CHECK_NAMES,
  MAX_EXAMPLES,
  checkRun,
  formatReport,
  type CheckName,
  type CheckReport,
  type InputEvent,
  type OutputRecord,
} from '../chaos/checker.js';
import { random } from '../../examples/transactions/generator.js';

/** The key every injected fault goes to; the generator gives it at least MIN_TARGET_EVENTS events. */
const TARGET = 'k0';
const MIN_TARGET_EVENTS = 10;

/** `count` events over `keys` keys drawn from `seed`, seqs numbered per key from 1. */
function generateInputs(count: number, keys: number, seed: number): InputEvent[] {
  const next = random(seed);
  const seqs = new Map<string, number>();
  const inputs: InputEvent[] = [];
  for (let i = 0; i < count; i++) {
    // The first events all go to TARGET so that every fault has room in the middle of the key.
    const key = i < MIN_TARGET_EVENTS ? TARGET : `k${Math.floor(next() * keys)}`;
    const seq = (seqs.get(key) ?? 0) + 1;
    seqs.set(key, seq);
    inputs.push({ id: `e${i}`, key, seq });
  }
  return inputs;
}

/** What a correct job writes, in input order. */
function correctOutputs(inputs: readonly InputEvent[]): OutputRecord[] {
  return inputs.map(({ id, key, seq }) => ({ id, key, seq, count: seq }));
}

/**
 * The same records as a partitioned sink could store them: each key's order
 * kept, keys of different partitions interleaved at random.
 */
function interleaveByPartition(outputs: readonly OutputRecord[], partitions: number, seed: number): OutputRecord[] {
  const queues: OutputRecord[][] = Array.from({ length: partitions }, () => []);
  for (const record of outputs) queues[Number(record.key.slice(1)) % partitions]!.push(record);
  const next = random(seed);
  const heads = new Array<number>(partitions).fill(0);
  const merged: OutputRecord[] = [];
  while (merged.length < outputs.length) {
    const p = Math.floor(next() * partitions);
    if (heads[p]! < queues[p]!.length) merged.push(queues[p]![heads[p]!++]!);
  }
  return merged;
}

/** Sink position of TARGET's record with `seq`. */
function positionOf(outputs: readonly OutputRecord[], seq: number): number {
  const at = outputs.findIndex((r) => r.key === TARGET && r.seq === seq);
  if (at < 0) throw new Error(`no output for ${TARGET}/${seq}`);
  return at;
}

/** A clean run of 200 events over 6 keys: the inputs and a fresh copy of the correct outputs. */
function cleanRun(seed = 7): { inputs: InputEvent[]; outputs: OutputRecord[] } {
  const inputs = generateInputs(200, 6, seed);
  return { inputs, outputs: correctOutputs(inputs) };
}

/** The report flags `category` and nothing else. */
function onlyIn(t: ExecutionContext, report: CheckReport, category: CheckName): void {
  const summary = formatReport(report);
  t.false(report.ok, summary);
  for (const name of CHECK_NAMES) {
    if (name === category) t.not(report[name].count, 0, `${name} should report the fault\n${summary}`);
    else t.is(report[name].count, 0, `${name} should be clean\n${summary}`);
  }
}

test('a correct run is ok', (t) => {
  const { inputs, outputs } = cleanRun();
  const report = checkRun(inputs, outputs);
  t.true(report.ok, formatReport(report));
  for (const name of CHECK_NAMES) t.deepEqual(report[name], { count: 0, examples: [] });
  t.is(report.inputCount, 200);
  t.is(report.outputCount, 200);
  t.regex(formatReport(report), /^chaos check ok/);
});

test('keys interleaved differently in the sink are still a correct run', (t) => {
  const inputs = generateInputs(5_000, 40, 11);
  const outputs = interleaveByPartition(correctOutputs(inputs), 4, 12);
  t.notDeepEqual(
    outputs.map((r) => r.id),
    inputs.map((e) => e.id),
  );
  const report = checkRun(inputs, outputs);
  t.true(report.ok, formatReport(report));
});

test('a lost record is reported as lost only', (t) => {
  const { inputs, outputs } = cleanRun();
  const [dropped] = outputs.splice(positionOf(outputs, 4), 1);
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'lost');
  t.deepEqual(report.lost, { count: 1, examples: [dropped!.id] });
});

test('a duplicate is reported as duplicated only, with its multiplicity', (t) => {
  const { inputs, outputs } = cleanRun();
  const copy = outputs[positionOf(outputs, 3)]!;
  // Twice more, later in the key but before its last record.
  outputs.splice(positionOf(outputs, 6), 0, { ...copy });
  outputs.splice(positionOf(outputs, 8), 0, { ...copy });
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'duplicated');
  t.deepEqual(report.duplicated, { count: 1, examples: [{ id: copy.id, times: 3 }] });
});

test('an output with an unknown id is reported as unexpected only', (t) => {
  const { inputs, outputs } = cleanRun();
  const at = positionOf(outputs, 5);
  const ghost = { id: 'ghost', key: TARGET, seq: 5, count: 5 };
  outputs.splice(at, 0, ghost);
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'unexpected');
  t.deepEqual(report.unexpected, { count: 1, examples: [{ reason: 'unknown-id', index: at, record: ghost }] });
});

test('an output whose seq differs from its input is reported as unexpected only', (t) => {
  const { inputs, outputs } = cleanRun();
  const at = positionOf(outputs, 4);
  const original = outputs[at]!;
  const corrupt = { ...original, seq: 40, count: 40 };
  outputs[at] = corrupt;
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'unexpected');
  const input = inputs.find((e) => e.id === original.id)!;
  t.deepEqual(report.unexpected, { count: 1, examples: [{ reason: 'mismatch', index: at, record: corrupt, input }] });
});

test('a reordered pair within a key is reported as a sequence error only', (t) => {
  const { inputs, outputs } = cleanRun();
  const [a, b] = [positionOf(outputs, 4), positionOf(outputs, 5)];
  [outputs[a], outputs[b]] = [outputs[b]!, outputs[a]!];
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'sequenceErrors');
  // Seq 5 arrives where 4 was due; then 4 arrives when 6 is due.
  t.deepEqual(
    report.sequenceErrors.examples.map(({ kind, key, expected, seen, index }) => ({ kind, key, expected, seen, index })),
    [
      { kind: 'gap', key: TARGET, expected: 4, seen: 5, index: a },
      { kind: 'regression', key: TARGET, expected: 6, seen: 4, index: b },
    ],
  );
});

test('a gap in a key is reported as a sequence error only', (t) => {
  const { inputs, outputs } = cleanRun();
  // Seq 3 is held back until after seq 7: the key jumps from 2 to 4.
  const [held] = outputs.splice(positionOf(outputs, 3), 1);
  const after = positionOf(outputs, 7) + 1;
  outputs.splice(after, 0, held!);
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'sequenceErrors');
  const [first, ...rest] = report.sequenceErrors.examples;
  t.deepEqual(first, { kind: 'gap', key: TARGET, expected: 3, seen: 4, id: outputs[positionOf(outputs, 4)]!.id, index: positionOf(outputs, 4) });
  // The late record itself is a regression when it finally arrives, and nothing else is.
  t.deepEqual(
    rest.map(({ kind, expected, seen, index }) => ({ kind, expected, seen, index })),
    [{ kind: 'regression', expected: 8, seen: 3, index: after }],
  );
});

test('a wrong running count is reported as a count error only', (t) => {
  const { inputs, outputs } = cleanRun();
  const at = positionOf(outputs, 5);
  const record = outputs[at]!;
  outputs[at] = { ...record, count: 6 };
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'countErrors');
  t.deepEqual(report.countErrors, {
    count: 1,
    examples: [{ id: record.id, key: TARGET, seq: 5, count: 6, index: at }],
  });
});

test('a final count off the number of inputs is reported as final state only', (t) => {
  // The seq-based checks trust the seq labels; the final-state reference only
  // counts events. Here one key's labels skip 7 and the job's counts follow
  // the labels, so every record looks right but the key ends one too high.
  const inputs = generateInputs(200, 6, 7).map((e) => (e.key === TARGET && e.seq >= 7 ? { ...e, seq: e.seq + 1 } : e));
  const outputs = correctOutputs(inputs);
  const events = inputs.filter((e) => e.key === TARGET).length;
  const report = checkRun(inputs, outputs);
  onlyIn(t, report, 'finalState');
  t.deepEqual(report.finalState, { count: 1, examples: [{ key: TARGET, expected: events, actual: events + 1 }] });
});

test('a lost last record shows as lost and in the final state', (t) => {
  // The final-state check is independent of the others by design, so a fault
  // at the end of a key is reported by both.
  const { inputs, outputs } = cleanRun();
  const events = inputs.filter((e) => e.key === TARGET).length;
  const [dropped] = outputs.splice(positionOf(outputs, events), 1);
  const report = checkRun(inputs, outputs);
  t.deepEqual(report.lost, { count: 1, examples: [dropped!.id] });
  t.deepEqual(report.finalState, { count: 1, examples: [{ key: TARGET, expected: events, actual: events - 1 }] });
  t.is(report.sequenceErrors.count + report.countErrors.count + report.duplicated.count + report.unexpected.count, 0);
});

test('a key with no output at all has no final state', (t) => {
  const inputs: InputEvent[] = [
    { id: 'a1', key: 'a', seq: 1 },
    { id: 'b1', key: 'b', seq: 1 },
  ];
  const report = checkRun(inputs, [{ id: 'a1', key: 'a', seq: 1, count: 1 }]);
  t.deepEqual(report.finalState.examples, [{ key: 'b', expected: 1, actual: null }]);
});

test('categories count every finding and keep the first examples', (t) => {
  const { inputs, outputs } = cleanRun();
  const report = checkRun(inputs, outputs.slice(50));
  t.is(report.lost.count, 50);
  t.deepEqual(report.lost.examples, inputs.slice(0, MAX_EXAMPLES).map((e) => e.id));
});

test('the summary has a line per category with its examples', (t) => {
  const { inputs, outputs } = cleanRun();
  const lostId = outputs.splice(positionOf(outputs, 4), 1)[0]!.id;
  outputs.push({ id: 'ghost', key: 'k9', seq: 1, count: 1 });
  const lines = formatReport(checkRun(inputs, outputs)).split('\n');
  t.is(lines.length, 1 + CHECK_NAMES.length);
  t.regex(lines[0]!, /FAILED \(2 of 6 checks\): 200 inputs, 200 outputs/);
  t.true(lines.some((l) => l.includes('lost: 1') && l.includes(lostId)));
  t.true(lines.some((l) => l.includes('unexpected: 1') && l.includes('ghost')));
  t.true(lines.some((l) => l.includes('count: 0')));
});

test('inputs that share an id are a TypeError', (t) => {
  const event = { id: 'x', key: 'k', seq: 1 };
  t.throws(() => checkRun([event, { ...event, seq: 2 }], []), { instanceOf: TypeError });
});

test('a clean run of a million records completes', (t) => {
  const inputs = generateInputs(1_000_000, 10_000, 99);
  const outputs = interleaveByPartition(correctOutputs(inputs), 16, 100);
  const report = checkRun(inputs, outputs);
  t.true(report.ok, formatReport(report));
  t.is(report.outputCount, 1_000_000);
});
