/**
 * The benchmark runner (`npm run bench`): starts its own nats-server,
 * preloads the input once, runs every throughput scenario `--runs` times and
 * the recovery scenario `--recovery-runs` times, each run in a fresh child
 * process, and prints throughput, CPU, the ratios to (a), (b) and (e), the
 * recovery times and the machine.
 *
 *   node dist/bench/run.js [--events N] [--runs N] [--recovery-runs N] [--only a,b]
 *                          [--write-doc] [--timeout SECONDS] [--keep-logs DIR]
 *                          [--module c=/path/to/scenario.js]
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import { startNatsServer } from '../cluster/transport/nats-server-process.js';
import { clockTicks } from './cpu.js';
import { writeResultsSection } from './doc.js';
import { describeMachine } from './machine.js';
import { preloadInput } from './preload.js';
import { formatMachine, formatResults, restoredText, type ScenarioSummary } from './report.js';
import type { ScenarioId } from './scenario.js';
import { spawnRun } from './spawn-run.js';
import { createMillraceStream, deleteConsumers, deleteStreamsExcept } from './streams.js';

interface ScenarioEntry {
  id: ScenarioId;
  module: string;
  title: string;
  /** `throughput`: reads the preloaded input, `--runs` times; `recovery` and `handoff`: write their own input, `--recovery-runs` times. */
  kind: 'throughput' | 'recovery' | 'handoff';
  /** Limit per run unless --timeout is given. */
  timeoutSeconds: number;
}

const SCENARIOS: readonly ScenarioEntry[] = [
  { id: 'a', module: 'naive-loop', title: 'naive loop: consume() + js.publish(), default client', kind: 'throughput', timeoutSeconds: 120 },
  { id: 'b', module: 'protocol-ceiling', title: 'protocol ceiling: raw nc.publish + inbox, AckAll per 1000', kind: 'throughput', timeoutSeconds: 120 },
  { id: 'c', module: 'millrace-stateless', title: 'millrace stateless chain (filter+map)', kind: 'throughput', timeoutSeconds: 120 },
  { id: 'd', module: 'millrace-keyed-count', title: 'millrace keyed running count, checkpoints every 1 s', kind: 'throughput', timeoutSeconds: 120 },
  { id: 'e', module: 'millrace-keyed-count-final-checkpoint', title: 'millrace keyed running count, no periodic checkpoints', kind: 'throughput', timeoutSeconds: 120 },
  { id: 'f', module: 'recovery-after-kill', title: 'recovery after SIGKILL, 1M keys', kind: 'recovery', timeoutSeconds: 480 },
  { id: 'g', module: 'handoff', title: 'handoff to a joining node and loss of a node, 4 × 100k keys', kind: 'handoff', timeoutSeconds: 480 },
];
const INPUT_STREAM = 'bench_in';
const PARTITIONS = 8;

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '3' },
    'recovery-runs': { type: 'string', default: '1' },
    only: { type: 'string' },
    'write-doc': { type: 'boolean', default: false },
    timeout: { type: 'string' },
    'keep-logs': { type: 'string' },
    module: { type: 'string', multiple: true, default: [] },
  },
});
const events = positiveInt('events', args.events);
const runs = positiveInt('runs', args.runs);
const recoveryRuns = positiveInt('recovery-runs', args['recovery-runs']);
const timeoutOverride = args.timeout === undefined ? undefined : positiveInt('timeout', args.timeout);
const only = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : undefined;
const ids = SCENARIOS.map((s) => s.id).join(', ');
for (const id of only ?? []) if (!SCENARIOS.some((s) => s.id === id)) throw new TypeError(`--only: unknown scenario "${id}" (${ids})`);
const overrides = new Map(
  args.module.map((m) => {
    const [id, path] = m.split('=', 2);
    if (!id || !path) throw new TypeError(`--module expects <id>=<file.js>, got "${m}"`);
    return [id, resolve(path)];
  }),
);

const out = (line = '') => process.stdout.write(`${line}\n`);
const selected = SCENARIOS.filter((s) => !only || only.has(s.id)).map((s) => ({
  ...s,
  file: overrides.get(s.id) ?? fileURLToPath(new URL(`./scenarios/${s.module}.js`, import.meta.url)),
  runs: s.kind === 'throughput' ? runs : recoveryRuns,
  timeoutMs: (timeoutOverride ?? s.timeoutSeconds) * 1000,
}));
const summaries: ScenarioSummary[] = selected.map((s) => ({
  id: s.id,
  kind: s.kind,
  title: s.title,
  status: existsSync(s.file) ? 'ok' : 'missing',
  runs: [],
  restarts: [],
  handoffs: [],
  failures: [],
}));
for (const s of summaries) if (s.status === 'missing') out(`(${s.id}) scenario module not found`);

const loadAtStart = loadavg()[0]!;
const root = mkdtempSync(join(tmpdir(), 'millrace-bench-'));
const server = await startNatsServer({ dir: join(root, 'nats') });
const ticks = clockTicks();
try {
  const nc = await connect({ servers: server.url });
  const jsm = await nc.jetstreamManager();
  const preloaded = selected.some((s) => s.kind === 'throughput');
  if (preloaded) {
    const preloadSeconds = await preloadInput(nc, { stream: INPUT_STREAM, partitions: PARTITIONS, events });
    out(`preloaded ${events.toLocaleString('en-US')} events into ${INPUT_STREAM} (${PARTITIONS} partitions) in ${preloadSeconds.toFixed(1)} s; nats-server pid ${server.pid} at ${server.url}`);
  } else {
    out(`nats-server pid ${server.pid} at ${server.url}`);
  }

  // Runs interleave (a1 b1 c1 d1 a2 ...) so a slow spell on this shared VM does not land on one scenario.
  const rounds = Math.max(...selected.map((s) => s.runs));
  for (let run = 1; run <= rounds; run++) {
    for (const [i, s] of selected.entries()) {
      const summary = summaries[i]!;
      if (summary.status === 'missing' || run > s.runs) continue;
      const runId = `${s.id}${run}_${Date.now().toString(36)}`;
      const workDir = join(root, 'runs', runId);
      mkdirSync(workDir, { recursive: true });
      const outputStream = `bench_out_${runId}`;
      try {
        await createMillraceStream(jsm, outputStream, PARTITIONS);
        const ctx = { natsUrl: server.url, inputStream: INPUT_STREAM, partitions: PARTITIONS, events, outputStream, runId, workDir };
        const r = await spawnRun({ file: s.file, ctx, natsPid: server.pid, clockTicks: ticks, timeoutMs: s.timeoutMs });
        summary.title = r.title;
        if (r.kind === 'recovery') {
          summary.restarts.push(...r.restarts);
          const each = r.restarts.map((m) => `${m.dataDir} data dir ${Math.round(m.recoveryMs).toLocaleString('en-US')} ms (${restoredText(m.restoredFrom)})`);
          out(`(${s.id}) run ${run}/${s.runs}: ${r.keys.toLocaleString('en-US')} keys; kill → first new output: ${each.join(', ')}; verified: ${r.verified}`);
          continue;
        }
        if (r.kind === 'handoff') {
          summary.handoffs.push(r);
          const pauses = r.moved.map((m) => `${m.task.split('/').at(-1)}: ${Math.round(m.pauseMs).toLocaleString('en-US')} ms`);
          out(
            `(${s.id}) run ${run}/${s.runs}: ${r.tasks} tasks × ${r.keysPerTask.toLocaleString('en-US')} keys; pause of each task moved to the joining node ${pauses.join(', ')} ` +
              `(handoff ${Math.round(r.handoffMs).toLocaleString('en-US')} ms); SIGKILL → dead node's tasks processing elsewhere ${Math.round(r.deadNodeMs).toLocaleString('en-US')} ms; verified: ${r.verified}`,
          );
          continue;
        }
        if (r.events !== events) throw new Error(`run ${runId} reported ${r.events} events, the input has ${events}`);
        const record = {
          eventsPerSecond: r.events / r.seconds,
          seconds: r.seconds,
          nodeCores: r.nodeCpu / r.cpuWindow,
          natsCores: r.natsCpu / r.cpuWindow,
          checkpoints: r.checkpoints,
        };
        summary.runs.push(record);
        out(
          `(${s.id}) run ${run}/${s.runs}: ${Math.round(record.eventsPerSecond).toLocaleString('en-US')} ev/s in ${r.seconds.toFixed(2)} s, ` +
            `node ${record.nodeCores.toFixed(2)} / nats-server ${record.natsCores.toFixed(2)} cores` +
            `${r.checkpoints === undefined ? '' : `, ${r.checkpoints} checkpoint${r.checkpoints === 1 ? '' : 's'} (the last one final)`}` +
            `${r.windowSource === 'run' ? ' (CPU over the whole run: the scenario did not use ctx.timer)' : ''}; verified: ${r.verified}`,
        );
      } catch (err) {
        summary.status = 'failed';
        summary.failures.push(err instanceof Error ? err.message : String(err));
        out(`(${s.id}) run ${run}/${s.runs} FAILED: ${summary.failures.at(-1)}`);
      } finally {
        if (preloaded) await deleteConsumers(jsm, INPUT_STREAM);
        await deleteStreamsExcept(jsm, INPUT_STREAM);
        if (args['keep-logs']) keepLogs(workDir, join(resolve(args['keep-logs']), runId));
        rmSync(workDir, { recursive: true, force: true });
      }
    }
  }
  await nc.close();
} finally {
  await server.stop();
  rmSync(root, { recursive: true, force: true });
}

const machine = describeMachine(loadAtStart);
const results = formatResults(summaries, events);
out();
out(results);
out();
out('Machine:');
out(formatMachine(machine));
if (args['write-doc']) {
  const when = new Date().toISOString().slice(0, 10);
  const flags = process.argv.slice(2).filter((a) => a !== '--write-doc');
  const cmd = flags.length ? `npm run bench -- ${flags.join(' ')}` : 'npm run bench';
  writeResultsSection(`Measured ${when} with \`${cmd}\` (${runs} runs per throughput scenario, ${recoveryRuns} of the recovery scenario).\n\n${results}\n\nMachine:\n\n${formatMachine(machine)}`);
  out('\nwrote the results section of docs/benchmarks.md');
}
if (summaries.some((s) => s.failures.length)) process.exitCode = 1;

/** Copies the node logs a run left in its work dir (millrace scenarios write them there). */
function keepLogs(workDir: string, to: string): void {
  const logs = readdirSync(workDir).filter((f) => f.endsWith('.log'));
  if (!logs.length) return;
  mkdirSync(to, { recursive: true });
  for (const f of logs) copyFileSync(join(workDir, f), join(to, f));
  out(`    logs kept in ${to}`);
}

function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new TypeError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}
