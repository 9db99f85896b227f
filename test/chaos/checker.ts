/**
 * The result checker of the chaos harness: compares the events fed to a
 * counting job with the records read back from its sink, in the manner of
 * Jepsen's total-queue checker (lost, duplicated, unexpected, with
 * multiplicities) plus the per-key checks of Flink's SemanticsCheckMapper
 * (sequence order, running count) and a final state compared with a reference
 * built only from the number of inputs per key.
 *
 * Each output is attributed once so that one fault lands in one category: an
 * output that matches no input is reported under `unexpected` and ignored by
 * the per-key checks, and the sequence check walks only the first valid
 * occurrence of each id and expects only the seqs that were delivered, so a
 * lost or duplicated record does not also show up as a gap. The final-state
 * check is the exception by design: it trusts neither the seq labels nor the
 * other checks, so a fault at the end of a key (a lost last record, a stale
 * replay) is reported there too.
 *
 * Pure functions, linear in the number of records apart from sorting each
 * key's delivered seqs (already sorted in a normal run, so that is one pass).
 */

/** An event fed to the job: the `seq`-th event of `key`, seqs 1, 2, 3… per key with no gaps. */
export interface InputEvent {
  readonly id: string;
  readonly key: string;
  readonly seq: number;
}

/** What the job writes per input event: the event's fields and the key's running count after it. */
export interface OutputRecord {
  readonly id: string;
  readonly key: string;
  readonly seq: number;
  readonly count: number;
}

/** One category of a report: how many findings in all, and the first {@link MAX_EXAMPLES} of them. */
export interface Finding<T> {
  readonly count: number;
  readonly examples: readonly T[];
}

/** An input id that reached the sink more than once; `times` counts every output bearing the id. */
export interface Duplicate {
  readonly id: string;
  readonly times: number;
}

/**
 * An output that is not the output of any input: its id is no input id, or
 * its key or seq differ from those of the input with that id.
 */
export type UnexpectedOutput =
  | {
      readonly reason: 'unknown-id';
      /** Position in the sink. */
      readonly index: number;
      readonly record: OutputRecord;
    }
  | {
      readonly reason: 'mismatch';
      /** Position in the sink. */
      readonly index: number;
      readonly record: OutputRecord;
      /** The input that has the record's id. */
      readonly input: InputEvent;
    };

/**
 * A break in a key's order at sink position `index`: `gap` when `seen` is
 * ahead of `expected` (a delivered record of the key comes later), `regression`
 * when `seen` is behind it (a record arrives after a higher seq).
 */
export interface SequenceError {
  readonly kind: 'gap' | 'regression';
  readonly key: string;
  /** The next seq of the key that reached the sink: the lowest delivered seq above any seen so far. */
  readonly expected: number;
  readonly seen: number;
  readonly id: string;
  readonly index: number;
}

/** A valid output whose running count is not its seq. */
export interface CountError {
  readonly id: string;
  readonly key: string;
  readonly seq: number;
  readonly count: number;
  readonly index: number;
}

/** A key whose last count in the sink differs from its number of inputs; `actual` is null when no valid output of the key arrived. */
export interface FinalStateMismatch {
  readonly key: string;
  readonly expected: number;
  readonly actual: number | null;
}

/** The verdict on one run. */
export interface CheckReport {
  /** True only when every category below is empty. */
  readonly ok: boolean;
  readonly inputCount: number;
  readonly outputCount: number;
  /** Input ids with no output at all, in input order. */
  readonly lost: Finding<string>;
  /** Input ids output more than once, in input order. */
  readonly duplicated: Finding<Duplicate>;
  /** Outputs that match no input, in sink order. */
  readonly unexpected: Finding<UnexpectedOutput>;
  /** Order breaks per key over the first valid occurrence of each id, in sink order. */
  readonly sequenceErrors: Finding<SequenceError>;
  /** Valid outputs (repeats included) with `count !== seq`, in sink order. */
  readonly countErrors: Finding<CountError>;
  /** Keys whose last valid output in sink order disagrees with the key's number of inputs, in order of first input. */
  readonly finalState: Finding<FinalStateMismatch>;
}

/** The categories of a {@link CheckReport}, in reporting order. */
export const CHECK_NAMES = ['lost', 'duplicated', 'unexpected', 'sequenceErrors', 'countErrors', 'finalState'] as const;

/** A category of a {@link CheckReport}. */
export type CheckName = (typeof CHECK_NAMES)[number];

/** How many examples a category keeps. */
export const MAX_EXAMPLES = 20;

/** How many examples {@link formatReport} prints per category. */
const FORMAT_EXAMPLES = 5;

/** Marks an output that matches no input, in the per-output index of the input it is the output of. */
const INVALID = -1;

/** A category being filled: counts everything, keeps the first examples. */
interface Collector<T> {
  count: number;
  examples: T[];
}

function collector<T>(): Collector<T> {
  return { count: 0, examples: [] };
}

/** Counts one finding; true if its example should be kept, so callers build example objects only then. */
function take(into: Collector<unknown>): boolean {
  into.count++;
  return into.examples.length < MAX_EXAMPLES;
}

/** A key's walk through the sink: its delivered seqs in ascending order and the position of the next expected one. */
interface KeyWalk {
  readonly seqs: number[];
  next: number;
  high: number;
}

/**
 * Checks one run: `inputs` as fed to the job, `outputs` as read back from the
 * sink in sink order. Throws a TypeError if two inputs share an id, since the
 * harness, not the job, would then be broken.
 */
export function checkRun(inputs: readonly InputEvent[], outputs: readonly OutputRecord[]): CheckReport {
  const indexById = indexInputs(inputs);
  const times = new Uint32Array(inputs.length);
  // 1 once an input has a valid output; the sequence walk adds 2 on the first one it visits.
  const delivered = new Uint8Array(inputs.length);
  const inputOf = new Int32Array(outputs.length);
  const lastCount = new Map<string, number>();
  const unexpected = collector<UnexpectedOutput>();
  const countErrors = collector<CountError>();

  for (let i = 0; i < outputs.length; i++) {
    const record = outputs[i]!;
    const at = indexById.get(record.id);
    if (at === undefined) {
      inputOf[i] = INVALID;
      if (take(unexpected)) unexpected.examples.push({ reason: 'unknown-id', index: i, record });
      continue;
    }
    times[at]++;
    const input = inputs[at]!;
    if (record.key !== input.key || record.seq !== input.seq) {
      inputOf[i] = INVALID;
      if (take(unexpected)) unexpected.examples.push({ reason: 'mismatch', index: i, record, input });
      continue;
    }
    inputOf[i] = at;
    delivered[at] = 1;
    lastCount.set(record.key, record.count);
    if (record.count !== record.seq && take(countErrors)) {
      countErrors.examples.push({ id: record.id, key: record.key, seq: record.seq, count: record.count, index: i });
    }
  }

  const lost = collector<string>();
  const duplicated = collector<Duplicate>();
  for (let at = 0; at < inputs.length; at++) {
    if (times[at] === 0 && take(lost)) lost.examples.push(inputs[at]!.id);
    if (times[at]! > 1 && take(duplicated)) duplicated.examples.push({ id: inputs[at]!.id, times: times[at]! });
  }

  const sequenceErrors = walkSequences(inputs, outputs, inputOf, delivered);
  const finalState = compareFinalState(inputs, lastCount);
  const findings = { lost, duplicated, unexpected, sequenceErrors, countErrors, finalState };
  return {
    ok: CHECK_NAMES.every((name) => findings[name].count === 0),
    inputCount: inputs.length,
    outputCount: outputs.length,
    ...findings,
  };
}

/** Input id → position in `inputs`. */
function indexInputs(inputs: readonly InputEvent[]): Map<string, number> {
  const indexById = new Map<string, number>();
  for (let at = 0; at < inputs.length; at++) {
    const id = inputs[at]!.id;
    const earlier = indexById.get(id);
    if (earlier !== undefined) {
      throw new TypeError(`checkRun: inputs ${earlier} and ${at} share the id ${JSON.stringify(id)}; input ids must be unique`);
    }
    indexById.set(id, at);
  }
  return indexById;
}

/**
 * Walks the first valid occurrence of each id in sink order and expects, per
 * key, the delivered seqs in ascending order. Seqs that never arrived validly
 * are skipped: they are already reported as lost or unexpected.
 */
function walkSequences(
  inputs: readonly InputEvent[],
  outputs: readonly OutputRecord[],
  inputOf: Int32Array,
  delivered: Uint8Array,
): Finding<SequenceError> {
  const walks = new Map<string, KeyWalk>();
  for (let at = 0; at < inputs.length; at++) {
    if (delivered[at] === 0) continue;
    const { key, seq } = inputs[at]!;
    const walk = walks.get(key);
    if (walk) walk.seqs.push(seq);
    else walks.set(key, { seqs: [seq], next: 0, high: 0 });
  }
  for (const walk of walks.values()) {
    if (!isAscending(walk.seqs)) walk.seqs.sort((a, b) => a - b);
  }

  const errors = collector<SequenceError>();
  for (let i = 0; i < outputs.length; i++) {
    const at = inputOf[i]!;
    if (at === INVALID || delivered[at] !== 1) continue;
    delivered[at] = 3;
    const { id, key, seq } = inputs[at]!;
    const walk = walks.get(key)!;
    // Past the last delivered seq, the next one would be the seq after the highest seen.
    const expected = walk.next < walk.seqs.length ? walk.seqs[walk.next]! : walk.high + 1;
    if (seq !== expected && take(errors)) {
      errors.examples.push({ kind: seq > expected ? 'gap' : 'regression', key, expected, seen: seq, id, index: i });
    }
    if (seq > walk.high) {
      walk.high = seq;
      while (walk.next < walk.seqs.length && walk.seqs[walk.next]! <= seq) walk.next++;
    }
  }
  return errors;
}

function isAscending(seqs: readonly number[]): boolean {
  for (let i = 1; i < seqs.length; i++) if (seqs[i - 1]! > seqs[i]!) return false;
  return true;
}

/** The reference (number of inputs per key, counted here) against the last valid count per key in the sink. */
function compareFinalState(inputs: readonly InputEvent[], lastCount: ReadonlyMap<string, number>): Finding<FinalStateMismatch> {
  const reference = new Map<string, number>();
  for (const { key } of inputs) reference.set(key, (reference.get(key) ?? 0) + 1);
  const mismatches = collector<FinalStateMismatch>();
  for (const [key, expected] of reference) {
    const actual = lastCount.get(key) ?? null;
    if (actual !== expected && take(mismatches)) mismatches.examples.push({ key, expected, actual });
  }
  return mismatches;
}

/** A compact summary for test failure messages: a verdict line, then one line per category with its first examples. */
export function formatReport(report: CheckReport): string {
  const failing = CHECK_NAMES.filter((name) => report[name].count > 0).length;
  const verdict = report.ok ? 'ok' : `FAILED (${failing} of ${CHECK_NAMES.length} checks)`;
  return [
    `chaos check ${verdict}: ${report.inputCount} inputs, ${report.outputCount} outputs`,
    line('lost', report.lost, (id) => id),
    line('duplicated', report.duplicated, (d) => `${d.id} ×${d.times}`),
    line('unexpected', report.unexpected, formatUnexpected),
    line('sequence', report.sequenceErrors, (e) => `${e.key} @${e.index} ${e.id}: expected seq ${e.expected}, saw ${e.seen} (${e.kind})`),
    line('count', report.countErrors, (e) => `${e.key} @${e.index} ${e.id}: seq ${e.seq}, count ${e.count}`),
    line('final state', report.finalState, (m) => `${m.key}: expected ${m.expected}, got ${m.actual ?? 'nothing'}`),
  ].join('\n');
}

function formatUnexpected(u: UnexpectedOutput): string {
  const { id, key, seq } = u.record;
  const at = `@${u.index} ${id} (${key}/${seq})`;
  return u.reason === 'unknown-id' ? `${at}: unknown id` : `${at}: input is ${u.input.key}/${u.input.seq}`;
}

function line<T>(label: string, finding: Finding<T>, show: (example: T) => string): string {
  if (finding.count === 0) return `  ${label}: 0`;
  const shown = finding.examples.slice(0, FORMAT_EXAMPLES).map(show);
  const more = finding.count - shown.length;
  return `  ${label}: ${finding.count} — ${shown.join('; ')}${more > 0 ? `; … ${more} more` : ''}`;
}
