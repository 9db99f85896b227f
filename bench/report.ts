/** Statistics over runs and the Markdown the runner prints and writes to docs/benchmarks.md. */
import { RESTORE_SOURCES } from '../cluster/checkpoint/task-snapshots.js';
import type { MachineInfo } from './machine.js';
import type { HandoffResult, RestartMeasurement, RestartPhase, ScenarioId } from './scenario.js';

export interface RunRecord {
  eventsPerSecond: number;
  seconds: number;
  nodeCores: number;
  natsCores: number;
  /** Millrace scenarios: checkpoints in the run, the final one included. */
  checkpoints: number | undefined;
}

export interface ScenarioSummary {
  id: ScenarioId;
  kind: 'throughput' | 'recovery' | 'handoff';
  title: string;
  /** `missing`: the scenario module is not written yet. */
  status: 'ok' | 'missing' | 'failed';
  /** Throughput runs. */
  runs: RunRecord[];
  /** Restarts measured by the recovery runs. */
  restarts: RestartMeasurement[];
  /** What the handoff runs measured. */
  handoffs: HandoffResult[];
  failures: string[];
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The ratio targets against (b), the protocol ceiling. */
export const TARGETS: readonly { id: ScenarioId; ofB: number }[] = [
  { id: 'c', ofB: 1.0 },
  { id: 'd', ofB: 0.8 },
];
/** (d) with checkpoints every second may lose at most this fraction of (e)'s throughput. */
export const CHECKPOINT_OVERHEAD_TARGET = 0.1;
/** SIGKILL → first new output, each kind of restart (median). */
export const RECOVERY_TARGET_MS = 5_000;
/** A task moved to a joining node, 100k keys of state: its last record on the old node → its first on the new (the slowest). */
export const HANDOFF_PAUSE_TARGET_MS = 2_000;

export function spread(values: number[]): Spread {
  const v = [...values].sort((x, y) => x - y);
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]! };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits = 2) => n.toFixed(digits);
const percent = (x: number) => `${(x * 100).toFixed(1)} %`;

function median(s: ScenarioSummary | undefined): number | undefined {
  return s && s.runs.length ? spread(s.runs.map((r) => r.eventsPerSecond)).median : undefined;
}

/** Markdown: the throughput table, the recovery table and the targets. */
export function formatResults(summaries: ScenarioSummary[], events: number): string {
  const lines: string[] = [];
  const throughput = summaries.filter((s) => s.kind === 'throughput');
  const recovery = summaries.filter((s) => s.kind === 'recovery');
  const handoff = summaries.filter((s) => s.kind === 'handoff');
  if (throughput.length) lines.push(formatThroughput(throughput, events));
  if (recovery.length) lines.push(formatRecovery(recovery));
  if (handoff.length) lines.push(formatHandoff(handoff));
  lines.push(formatTargets(summaries));
  return lines.join('\n\n');
}

function formatThroughput(summaries: ScenarioSummary[], events: number): string {
  const byId = new Map(summaries.map((s) => [s.id, s]));
  const a = median(byId.get('a'));
  const b = median(byId.get('b'));
  const ratio = (x: number | undefined, base: number | undefined) => (x !== undefined && base ? `${fixed(x / base)}×` : '—');
  const lines = [
    `| scenario | events/s (median) | min | max | runs | node cores | nats-server cores | checkpoints | vs (a) | vs (b) |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
  ];
  for (const s of summaries) {
    const name = `(${s.id}) ${s.title}`;
    if (!s.runs.length) {
      lines.push(`| ${name} | ${notRun(s)} | | | 0 | | | | | |`);
      continue;
    }
    const rate = spread(s.runs.map((r) => r.eventsPerSecond));
    lines.push(
      `| ${name} | **${int(rate.median)}** | ${int(rate.min)} | ${int(rate.max)} | ${runCount(s, s.runs.length)} | ` +
        `${fixed(spread(s.runs.map((r) => r.nodeCores)).median)} | ${fixed(spread(s.runs.map((r) => r.natsCores)).median)} | ` +
        `${checkpointRange(s.runs)} | ${ratio(rate.median, a)} | ${ratio(rate.median, b)} |`,
    );
  }
  lines.push(
    '',
    `${int(events)} events per run; events/s = events ÷ timed window; cores = CPU-seconds per wall-second over the window (medians); ` +
      'checkpoints = checkpoints the millrace job took in the run (min–max over runs), the final one included.',
  );
  const d = median(byId.get('d'));
  const e = median(byId.get('e'));
  if (d !== undefined && e !== undefined) {
    lines.push(
      '',
      `Checkpoint overhead: (d) ÷ (e) = ${fixed(d / e)}×, i.e. checkpoints every 1 s (transactional sink) cost ${percent(1 - d / e)} of the ` +
        'throughput of the same job without periodic checkpoints: (e) runs with a checkpoint interval of 1 h, longer than any run, and an ' +
        'immediate sink, so nothing is committed until the final checkpoint, which both runs take as soon as their last input is processed.',
    );
    const periodic = byId.get('d')!.runs.map((r) => (r.checkpoints ?? 1) - 1);
    if (Math.max(...periodic) === 0) {
      lines.push(
        '',
        '**Caveat:** no run of (d) took a periodic checkpoint before its final one (the coordinator starts them once every task runs, ' +
          'and the tasks start one by one while the first ones already drain the input), so this overhead is that of the transactional ' +
          'sink and of one larger final checkpoint, not of checkpointing every second.',
      );
    }
  }
  return lines.join('\n');
}

const PHASES: readonly [RestartPhase, string][] = [
  ['connected', 'node up'],
  ['leader', 'lease won'],
  ['newRun', 'new run'],
  ['restored', 'state restored'],
  ['firstCommit', 'first commit'],
];

function formatRecovery(summaries: ScenarioSummary[]): string {
  const lines = [
    `| restart | kill → first new output, ms (median) | min | max | restarts | ${PHASES.map(([, name]) => name).join(' | ')} | tasks restored from |`,
    `| --- | ---: | ---: | ---: | ---: | ${PHASES.map(() => '---:').join(' | ')} | --- |`,
  ];
  for (const s of summaries) {
    if (!s.restarts.length) {
      lines.push(`| (${s.id}) ${s.title} | ${notRun(s)} | | | 0 | ${PHASES.map(() => '').join(' | ')} | |`);
      continue;
    }
    for (const dataDir of ['local', 'empty'] as const) {
      const restarts = s.restarts.filter((r) => r.dataDir === dataDir);
      if (!restarts.length) continue;
      const ms = spread(restarts.map((r) => r.recoveryMs));
      const phases = PHASES.map(([phase]) => {
        const at = restarts.map((r) => r.phases[phase]).filter((x): x is number => x !== undefined);
        return at.length ? int(spread(at).median) : '—';
      });
      const from = restarts.map((r) => restoredText(r.restoredFrom)).filter((t, i, all) => all.indexOf(t) === i);
      const what = dataDir === 'local' ? 'same data dir (local LevelDB)' : 'empty data dir (snapshot store)';
      lines.push(`| (${s.id}) ${what} | **${int(ms.median)}** | ${int(ms.min)} | ${int(ms.max)} | ${runCount(s, restarts.length)} | ${phases.join(' | ')} | ${from.join('; ')} |`);
    }
  }
  lines.push(
    '',
    'A node process holding 1,000,000 keys of keyed-count state (checkpoints every 1 s, transactional sink, leader lease TTL 5 s) is killed with SIGKILL ' +
      'while a trickle of 200 events/s flows, and restarted at once with the same node id. "kill → first new output" ends at the server timestamp of ' +
      'the first output the restarted node stored; the phases are the restarted node\'s log lines, in ms after the kill (medians): its first line, ' +
      'winning the coordinator lease (the dead node\'s must expire first), the coordinator\'s new run, every task restored, the first checkpoint committed.',
  );
  return lines.join('\n');
}

function formatHandoff(summaries: ScenarioSummary[]): string {
  const lines = [
    '| scenario | pause per moved task, ms (max over tasks and runs) | median | handoff, ms | SIGKILL → dead node\'s tasks processing elsewhere, ms (median) | runs | moved tasks restored from |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const s of summaries) {
    if (!s.handoffs.length) {
      lines.push(`| (${s.id}) ${s.title} | ${notRun(s)} | | | | 0 | |`);
      continue;
    }
    const pauses = spread(s.handoffs.flatMap((h) => h.moved.map((m) => m.pauseMs)));
    const handoffMs = spread(s.handoffs.map((h) => h.handoffMs)).median;
    const dead = spread(s.handoffs.map((h) => h.deadNodeMs)).median;
    const from = [...new Set(s.handoffs.flatMap((h) => h.moved.map((m) => m.restoredFrom)))].join('; ');
    lines.push(`| (${s.id}) ${s.title} | **${int(pauses.max)}** | ${int(pauses.median)} | ${int(handoffMs)} | ${int(dead)} | ${runCount(s, s.handoffs.length)} | ${from} |`);
  }
  lines.push(
    '',
    'One node process builds 100,000 keys of keyed-count state in each of 4 tasks (checkpoints every 1 s, transactional sink); with a trickle of 200 events/s, ' +
      'a second node starts and the coordinator hands 2 tasks over to it at a checkpoint. The pause of a moved task runs from the seal it stopped at on the old node ' +
      'to its first record on the new one (their log lines; one clock). Then the second node is SIGKILLed: its tasks resume on the first node once its membership ' +
      'entry expires (5 s) and the job restarted from its last checkpoint; the time ends at the server timestamp of the first output of a key of those tasks.',
  );
  return lines.join('\n');
}

function formatTargets(summaries: ScenarioSummary[]): string {
  const byId = new Map(summaries.map((s) => [s.id, s]));
  const b = median(byId.get('b'));
  const lines = ['Targets (medians):', ''];
  for (const t of TARGETS) {
    const x = median(byId.get(t.id));
    lines.push(`- (${t.id}) ≥ ${fixed(t.ofB, 1)}× (b): ${x === undefined || b === undefined ? 'pending' : verdict(x / b >= t.ofB, `${fixed(x / b)}×`)}`);
  }
  const d = median(byId.get('d'));
  const e = median(byId.get('e'));
  const overhead = d === undefined || e === undefined ? undefined : 1 - d / e;
  lines.push(
    `- checkpoint overhead, (d) vs (e), ≤ ${percent(CHECKPOINT_OVERHEAD_TARGET)}: ${overhead === undefined ? 'pending (needs (d) and (e) in one invocation, e.g. `--only b,d,e`)' : verdict(overhead <= CHECKPOINT_OVERHEAD_TARGET, percent(overhead))}`,
  );
  const restarts = [...byId.values()].flatMap((s) => s.restarts);
  for (const dataDir of ['local', 'empty'] as const) {
    const ms = restarts.filter((r) => r.dataDir === dataDir).map((r) => r.recoveryMs);
    const result = ms.length ? verdict(spread(ms).median <= RECOVERY_TARGET_MS, `${int(spread(ms).median)} ms`) : 'pending';
    lines.push(`- recovery after SIGKILL, ${dataDir} data dir, ≤ ${int(RECOVERY_TARGET_MS)} ms: ${result}`);
  }
  const pauses = [...byId.values()].flatMap((s) => s.handoffs.flatMap((h) => h.moved.map((m) => m.pauseMs)));
  lines.push(
    `- handoff pause per moved task, 100k keys, ≤ ${int(HANDOFF_PAUSE_TARGET_MS)} ms (slowest task): ${pauses.length ? verdict(Math.max(...pauses) <= HANDOFF_PAUSE_TARGET_MS, `${int(Math.max(...pauses))} ms`) : 'pending'}`,
  );
  return lines.join('\n');
}

function checkpointRange(runs: RunRecord[]): string {
  const n = runs.map((r) => r.checkpoints).filter((c): c is number => c !== undefined);
  if (!n.length) return '—';
  const lo = Math.min(...n);
  const hi = Math.max(...n);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

/** `local 8` or `local 5, rolledBack 3`: how a restart's tasks got their state. */
export function restoredText(from: RestartMeasurement['restoredFrom']): string {
  return RESTORE_SOURCES.filter((k) => (from[k] ?? 0) > 0)
    .map((k) => `${k} ${from[k]}`)
    .join(', ');
}

function verdict(met: boolean, figure: string): string {
  return `**${met ? 'met' : 'not met'}** (${figure})`;
}

function notRun(s: ScenarioSummary): string {
  return s.status === 'missing' ? 'scenario module not found' : `failed: ${s.failures.length} run(s)`;
}

function runCount(s: ScenarioSummary, n: number): string {
  return s.failures.length ? `${n} (+${s.failures.length} failed run(s))` : String(n);
}

/** Markdown: one line per property of the machine. */
export function formatMachine(m: MachineInfo): string {
  return [
    `- CPU: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.kernel}`,
    `- Node.js ${m.node}, nats-server ${m.natsServer}, nats.js ${m.natsJs}, msgpackr ${m.msgpackr}`,
    `- load average (1 min): ${fixed(m.load.start)} at the start, ${fixed(m.load.end)} at the end`,
  ].join('\n');
}
