/**
 * The end of a chaos run: read the input stream and both output streams back
 * and hand them to the checkers, with references built from the generated
 * inputs alone. Every reason to fail the run that the data gives is listed.
 */
import type { NatsConnection } from 'nats';
import type { ChaosPartitions, GroupCount, KeyCount } from '../fixtures/chaos-shape.js';
import { checkRun, type CheckReport, type Finding } from './checker.js';
import type { ChaosInputs } from './events.js';
import { checkGroups, type GroupReport } from './group-checker.js';
import { checkInputStream, type InputCheck } from './input-check.js';
import { describeCopies, readOutputs, type OutputRead } from './outputs.js';

export interface RunStreams {
  readonly input: string;
  /** The keyed count job's output. */
  readonly counts: string;
  /** The two-stage job's output. */
  readonly groups: string;
}

export interface Verdict {
  readonly input: InputCheck;
  /** The keyed count job's records. */
  readonly count: CheckReport;
  /** The two-stage job's records, per key. */
  readonly groups: CheckReport;
  /** The two-stage job's records, per group. */
  readonly groupCounts: GroupReport;
  readonly countMisrouted: Finding<string>;
  readonly groupsMisrouted: Finding<string>;
  /** For the first duplicated ids of each job: every stored copy's stream seq and time. */
  readonly duplicateCopies: readonly string[];
  readonly checkMs: number;
}

/** Reads the streams (the nodes must be stopped) and checks them. */
export async function judge(
  nc: NatsConnection,
  streams: RunStreams,
  inputs: ChaosInputs,
  partitions: ChaosPartitions,
  startedAt: number,
): Promise<Verdict> {
  const started = Date.now();
  const input = await checkInputStream(nc, streams.input, inputs.events);
  const counts = await readOutputs<KeyCount>(nc, streams.counts, partitions.output, (r) => r.key);
  const twoStage = await readOutputs<GroupCount>(nc, streams.groups, partitions.output, (r) => r.group);
  const count = checkRun(inputs.events, counts.records);
  const groups = checkRun(inputs.events, twoStage.records);
  const groupCounts = checkGroups(
    inputs.events.map((e) => ({ id: e.id, group: inputs.groupOf(e.key) })),
    twoStage.records,
  );
  const copies = (read: OutputRead<KeyCount>, report: CheckReport, job: string) =>
    describeCopies(read, report.duplicated.examples.slice(0, 5).map((d) => d.id), startedAt).map((c) => `${job} ${c}`);
  return {
    input,
    count,
    groups,
    groupCounts,
    countMisrouted: counts.misrouted,
    groupsMisrouted: twoStage.misrouted,
    duplicateCopies: [...copies(counts, count, 'keyed count'), ...copies(twoStage, groups, 'two-stage')],
    checkMs: Date.now() - started,
  };
}

/** One line per failed check. */
export function verdictFailures(v: Verdict): string[] {
  const failures: string[] = [];
  if (!v.input.ok) failures.push('the input stream does not hold what was published (publisher or broker; see the input check)');
  if (!v.count.ok) failures.push('keyed count job: the checker found faults');
  if (!v.groups.ok) failures.push('two-stage job: the checker found faults in its per-key records');
  if (!v.groupCounts.ok) failures.push('two-stage job: the per-group counts are wrong');
  if (v.countMisrouted.count > 0) failures.push(`keyed count job: ${v.countMisrouted.count} outputs not under their key's partition`);
  if (v.groupsMisrouted.count > 0) failures.push(`two-stage job: ${v.groupsMisrouted.count} outputs not under their group's partition`);
  return failures;
}
