/** Statistics over runs and the Markdown the runner prints and writes to docs/benchmarks.md. */
import type { MachineInfo } from './machine.js';

export type ScenarioId = 'a' | 'b' | 'c' | 'd';

export interface RunRecord {
  eventsPerSecond: number;
  seconds: number;
  nodeCores: number;
  natsCores: number;
}

export interface ScenarioSummary {
  id: ScenarioId;
  title: string;
  /** `missing`: the scenario module is not written yet. */
  status: 'ok' | 'missing' | 'failed';
  runs: RunRecord[];
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

export function spread(values: number[]): Spread {
  const v = [...values].sort((x, y) => x - y);
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]! };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits = 2) => n.toFixed(digits);

function median(s: ScenarioSummary | undefined): number | undefined {
  return s && s.runs.length ? spread(s.runs.map((r) => r.eventsPerSecond)).median : undefined;
}

/** Markdown: the results table and the targets. */
export function formatResults(summaries: ScenarioSummary[], events: number): string {
  const byId = new Map(summaries.map((s) => [s.id, s]));
  const a = median(byId.get('a'));
  const b = median(byId.get('b'));
  const ratio = (x: number | undefined, base: number | undefined) => (x !== undefined && base ? `${fixed(x / base)}×` : '—');
  const lines = [
    `| scenario | events/s (median) | min | max | runs | node cores | nats-server cores | vs (a) | vs (b) |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
  ];
  for (const s of summaries) {
    const name = `(${s.id}) ${s.title}`;
    if (!s.runs.length) {
      const why = s.status === 'missing' ? 'scenario module not found' : `failed: ${s.failures.length} run(s)`;
      lines.push(`| ${name} | ${why} | | | 0 | | | | |`);
      continue;
    }
    const rate = spread(s.runs.map((r) => r.eventsPerSecond));
    const runs = s.failures.length ? `${s.runs.length} (+${s.failures.length} failed)` : String(s.runs.length);
    lines.push(
      `| ${name} | **${int(rate.median)}** | ${int(rate.min)} | ${int(rate.max)} | ${runs} | ` +
        `${fixed(spread(s.runs.map((r) => r.nodeCores)).median)} | ${fixed(spread(s.runs.map((r) => r.natsCores)).median)} | ` +
        `${ratio(rate.median, a)} | ${ratio(rate.median, b)} |`,
    );
  }
  lines.push('', `${int(events)} events per run; events/s = events ÷ timed window; cores = CPU-seconds per wall-second over the window (medians).`, '');
  lines.push('Targets (medians, against (b) the protocol ceiling):', '');
  for (const t of TARGETS) {
    const x = median(byId.get(t.id));
    const verdict = x === undefined || b === undefined ? 'pending' : x / b >= t.ofB ? `**met** (${fixed(x / b)}×)` : `**not met** (${fixed(x / b)}×)`;
    lines.push(`- (${t.id}) ≥ ${fixed(t.ofB, 1)}× (b): ${verdict}`);
  }
  return lines.join('\n');
}

/** Markdown: one line per property of the machine. */
export function formatMachine(m: MachineInfo): string {
  return [
    `- CPU: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.kernel}`,
    `- Node.js ${m.node}, nats-server ${m.natsServer}, nats.js ${m.natsJs}, msgpackr ${m.msgpackr}`,
  ].join('\n');
}
