/** The printed report of a chaos run: verdict, faults, figures, checker reports, what the node logs complained about. */
import { formatReport } from './checker.js';
import type { ChaosCluster } from './cluster.js';
import { formatGroupReport } from './group-checker.js';
import type { ChaosResult } from './harness.js';
import { formatInputCheck } from './input-check.js';

/** Distinct error and warning log lines of every node life, most frequent first, each with a count and a first example. */
export function summarizeLogs(cluster: ChaosCluster, limit = 15): string[] {
  const groups = new Map<string, { count: number; first: string }>();
  for (const { node, life, entry } of cluster.entries(40)) {
    const err = entry.err as { code?: unknown; message?: unknown } | undefined;
    const level = entry.level === 40 ? 'WARN' : entry.level === 50 ? 'ERROR' : 'FATAL';
    const what = `${level} ${String(entry.msg)}${err?.code ? ` [${String(err.code)}]` : ''}`;
    const seen = groups.get(what);
    if (seen) seen.count++;
    else {
      const detail = typeof err?.message === 'string' ? `: ${err.message.slice(0, 200)}` : '';
      const where = [entry.job, entry.task].filter((x) => x !== undefined).join(' ');
      groups.set(what, { count: 1, first: `${node} life ${life}${where ? ` ${where}` : ''}${detail}` });
    }
  }
  return [...groups.entries()]
    .sort((a, b) => b[1].count - a[1].count)
    .slice(0, limit)
    .map(([what, { count, first }]) => `${what} ×${count} (first: ${first})`);
}

export function formatResult(r: ChaosResult): string {
  const d = r.durations;
  const v = r.verdict;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const lines = [
    `=== chaos run ${r.ok ? 'PASSED' : 'FAILED'} (seed ${r.options.seed}, ${r.options.events} events, ${r.options.nodes} node(s)) ===`,
    ...r.failures.map((f) => `FAIL: ${f}`),
    `faults: ${r.tally.kills} kills (${r.tally.wipes} with a wiped data dir), ${r.tally.leaderPauses} leader pauses, ` +
      `${r.tally.natsRestarts} nats-server restarts, ${r.tally.skipped} skipped`,
    ...r.faults.map((f) => `  t+${f.at.toFixed(1)}s ${f.fault.kind}${f.fault.kind === 'nats-restart' ? ` ${f.fault.signal}` : ''}: ${f.outcome}`),
    `durations: startup ${s(d.startupMs)}, publishing ${s(d.publishMs)}, faults ${s(d.faultsMs)}, processing ${s(d.processingMs)}, ` +
      `check ${s(d.checkMs)}, total ${s(d.totalMs)}`,
    `throughput: ${r.eventsPerSec} input events/s through both jobs (${r.options.events} events in ${s(d.processingMs)}, ` +
      `${2 * r.options.events} outputs expected, ${r.finalCounts.join(' + ')} stored)`,
    `publisher: ${JSON.stringify(r.publisher)}`,
    formatInputCheck(v.input),
    `keyed count job — ${formatReport(v.count)}`,
    `two-stage job, per key — ${formatReport(v.groups)}`,
    `two-stage job, per group — ${formatGroupReport(v.groupCounts)}`,
    v.duplicateCopies.length > 0 ? `copies of duplicated outputs:\n${v.duplicateCopies.map((c) => `  ${c}`).join('\n')}` : '',
    misrouted('keyed count job', v.countMisrouted),
    misrouted('two-stage job', v.groupsMisrouted),
    ...r.warnings.map((w) => `warning: ${w}`),
    r.logSummary.length > 0 ? `node log warnings and errors:\n${r.logSummary.map((l) => `  ${l}`).join('\n')}` : 'node logs: no warnings or errors',
  ];
  for (const exit of r.unexpectedExits) lines.push(`--- ${exit.node} life ${exit.life} exited on its own (${exit.logFile}) ---\n${exit.tail}`);
  if (r.keptLogs) lines.push(`logs kept in ${r.keptLogs}`);
  return lines.filter((l) => l !== '').join('\n');
}

function misrouted(job: string, f: { count: number; examples: readonly string[] }): string {
  if (f.count === 0) return '';
  return `${job}: ${f.count} misrouted outputs — ${f.examples.slice(0, 5).join('; ')}`;
}
