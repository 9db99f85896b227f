/**
 * The second half of the chaos checker, for a job whose last stage counts
 * per group (a key's group is fixed, so one group gathers many keys): each
 * input must reach the sink under its own group, and each group's running
 * counts must be exactly 1..n, ascending in sink order, ending at n, where n
 * is the group's number of inputs counted here from the inputs alone.
 *
 * Per input id (keys, seqs and the first stage's count) the records are
 * checked by `checkRun` in checker.ts; this file checks only what it does
 * not. To keep one fault in one category, an output whose id is no input id
 * is ignored here (`checkRun` reports it as unexpected), and the count and
 * order checks walk only the first occurrence of each id (`checkRun`
 * reports the repeats as duplicated). The final-state check, as there,
 * trusts no other check and looks at the last valid output of each group.
 */
import { MAX_EXAMPLES, type Finding } from './checker.js';

/** An input as the group check sees it: its id and the group its key belongs to. */
export interface GroupedInput {
  readonly id: string;
  readonly group: string;
}

/** What the job wrote for an input: its group and the group's running count after it. */
export interface GroupOutput {
  readonly id: string;
  readonly group: string;
  readonly groupCount: number;
}

/** An output under another group than its input's. */
export interface MisgroupedOutput {
  /** Position in the sink. */
  readonly index: number;
  readonly id: string;
  readonly group: string;
  readonly expected: string;
}

/** A group whose counts (first occurrence of each id) are not exactly 1..n; at most 5 values per list. */
export interface GroupCountError {
  readonly group: string;
  /** The group's number of inputs. */
  readonly expected: number;
  /** Counts in 1..n that no output carries. */
  readonly missing: readonly number[];
  /** Counts carried by the outputs of more than one id. */
  readonly repeated: readonly number[];
  /** Counts outside 1..n. */
  readonly outOfRange: readonly number[];
}

/** A group's count that is not above the highest count of the group seen earlier in the sink. */
export interface GroupOrderError {
  readonly group: string;
  readonly index: number;
  readonly id: string;
  readonly previous: number;
  readonly seen: number;
}

/** A group whose last count in the sink is not its number of inputs; `actual` null when none arrived. */
export interface GroupFinalMismatch {
  readonly group: string;
  readonly expected: number;
  readonly actual: number | null;
}

export interface GroupReport {
  /** True only when every category is empty. */
  readonly ok: boolean;
  readonly groups: number;
  readonly misgrouped: Finding<MisgroupedOutput>;
  readonly counts: Finding<GroupCountError>;
  readonly order: Finding<GroupOrderError>;
  readonly finalState: Finding<GroupFinalMismatch>;
}

export const GROUP_CHECK_NAMES = ['misgrouped', 'counts', 'order', 'finalState'] as const;

/** How many values a {@link GroupCountError} lists per kind. */
const LISTED = 5;
const FORMAT_EXAMPLES = 5;

interface Collector<T> {
  count: number;
  examples: T[];
}

function take<T>(into: Collector<T>, example: () => T): void {
  into.count++;
  if (into.examples.length < MAX_EXAMPLES) into.examples.push(example());
}

/** Checks the per-group counts of `outputs` (sink order) against `inputs`; throws a TypeError on duplicate input ids. */
export function checkGroups(inputs: readonly GroupedInput[], outputs: readonly GroupOutput[]): GroupReport {
  const groupById = new Map<string, string>();
  const reference = new Map<string, number>();
  for (const { id, group } of inputs) {
    if (groupById.has(id)) throw new TypeError(`checkGroups: the id ${JSON.stringify(id)} occurs twice in the inputs; input ids must be unique`);
    groupById.set(id, group);
    reference.set(group, (reference.get(group) ?? 0) + 1);
  }

  const misgrouped: Collector<MisgroupedOutput> = { count: 0, examples: [] };
  const order: Collector<GroupOrderError> = { count: 0, examples: [] };
  const seenIds = new Set<string>();
  /** group → its counts over the first occurrence of each id. */
  const counts = new Map<string, number[]>();
  const highest = new Map<string, number>();
  const last = new Map<string, number>();
  for (let index = 0; index < outputs.length; index++) {
    const { id, group, groupCount } = outputs[index]!;
    const expected = groupById.get(id);
    if (expected === undefined) continue;
    if (group !== expected) {
      take(misgrouped, () => ({ index, id, group, expected }));
      continue;
    }
    last.set(group, groupCount);
    if (seenIds.has(id)) continue;
    seenIds.add(id);
    let list = counts.get(group);
    if (!list) counts.set(group, (list = []));
    list.push(groupCount);
    const previous = highest.get(group) ?? 0;
    if (groupCount > previous) highest.set(group, groupCount);
    else take(order, () => ({ group, index, id, previous, seen: groupCount }));
  }

  const countErrors: Collector<GroupCountError> = { count: 0, examples: [] };
  const finalState: Collector<GroupFinalMismatch> = { count: 0, examples: [] };
  for (const [group, n] of reference) {
    const error = countError(group, n, counts.get(group) ?? []);
    if (error) take(countErrors, () => error);
    const actual = last.get(group) ?? null;
    if (actual !== n) take(finalState, () => ({ group, expected: n, actual }));
  }
  const findings = { misgrouped, counts: countErrors, order, finalState };
  return { ok: GROUP_CHECK_NAMES.every((name) => findings[name].count === 0), groups: reference.size, ...findings };
}

/** Whether `values` is exactly 1..n, each once; undefined when it is. */
function countError(group: string, n: number, values: readonly number[]): GroupCountError | undefined {
  const times = new Uint32Array(n + 1);
  const outOfRange: number[] = [];
  let outside = 0;
  for (const v of values) {
    if (Number.isInteger(v) && v >= 1 && v <= n) times[v]++;
    else if (outside++ < LISTED) outOfRange.push(v);
  }
  const missing: number[] = [];
  const repeated: number[] = [];
  let wrong = outside;
  for (let c = 1; c <= n; c++) {
    if (times[c] === 1) continue;
    wrong++;
    if (times[c] === 0 && missing.length < LISTED) missing.push(c);
    if (times[c]! > 1 && repeated.length < LISTED) repeated.push(c);
  }
  return wrong === 0 ? undefined : { group, expected: n, missing, repeated, outOfRange };
}

/** A verdict line and one line per category, with the first examples. */
export function formatGroupReport(report: GroupReport): string {
  const failing = GROUP_CHECK_NAMES.filter((name) => report[name].count > 0).length;
  const verdict = report.ok ? 'ok' : `FAILED (${failing} of ${GROUP_CHECK_NAMES.length} checks)`;
  return [
    `group check ${verdict}: ${report.groups} groups`,
    line('misgrouped', report.misgrouped, (m) => `@${m.index} ${m.id}: group ${m.group}, expected ${m.expected}`),
    line('group counts', report.counts, (e) =>
      `${e.group} (1..${e.expected}): missing [${e.missing.join(',')}] repeated [${e.repeated.join(',')}] out of range [${e.outOfRange.join(',')}]`,
    ),
    line('group order', report.order, (e) => `${e.group} @${e.index} ${e.id}: ${e.seen} after ${e.previous}`),
    line('group final state', report.finalState, (m) => `${m.group}: expected ${m.expected}, got ${m.actual ?? 'nothing'}`),
  ].join('\n');
}

function line<T>(label: string, finding: Finding<T>, show: (example: T) => string): string {
  if (finding.count === 0) return `  ${label}: 0`;
  const shown = finding.examples.slice(0, FORMAT_EXAMPLES).map(show);
  const more = finding.count - shown.length;
  return `  ${label}: ${finding.count} — ${shown.join('; ')}${more > 0 ? `; … ${more} more` : ''}`;
}
