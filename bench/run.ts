/**
 * The benchmark runner (`npm run bench`): starts its own nats-server,
 * preloads the input once, runs every scenario `--runs` times, each run in a
 * fresh child process, and prints throughput, CPU, the ratios to (a) and (b)
 * and the machine.
 *
 *   node dist/bench/run.js [--events N] [--runs N] [--only a,b] [--write-doc]
 *                          [--timeout SECONDS] [--module c=/path/to/scenario.js]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import { startNatsServer } from '../cluster/transport/nats-server-process.js';
import { clockTicks } from './cpu.js';
import { writeResultsSection } from './doc.js';
import { describeMachine } from './machine.js';
import { preloadInput } from './preload.js';
import { formatMachine, formatResults, type ScenarioId, type ScenarioSummary } from './report.js';
import { spawnRun } from './spawn-run.js';
import { createMillraceStream, deleteConsumers, deleteStreamsExcept } from './streams.js';

const SCENARIOS: readonly { id: ScenarioId; module: string; title: string }[] = [
  { id: 'a', module: 'naive-loop', title: 'naive loop: consume() + js.publish(), default client' },
  { id: 'b', module: 'protocol-ceiling', title: 'protocol ceiling: raw nc.publish + inbox, AckAll per 1000' },
  { id: 'c', module: 'millrace-stateless', title: 'millrace stateless chain (filter+map)' },
  { id: 'd', module: 'millrace-keyed-count', title: 'millrace keyed running count' },
];
const INPUT_STREAM = 'bench_in';
const PARTITIONS = 8;

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    'write-doc': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '120' },
    module: { type: 'string', multiple: true, default: [] },
  },
});
const events = positiveInt('events', args.events);
const runs = positiveInt('runs', args.runs);
const timeoutMs = positiveInt('timeout', args.timeout) * 1000;
const only = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : undefined;
for (const id of only ?? []) if (!SCENARIOS.some((s) => s.id === id)) throw new TypeError(`--only: unknown scenario "${id}" (a, b, c or d)`);
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
}));
const summaries: ScenarioSummary[] = selected.map((s) => ({
  id: s.id,
  title: s.title,
  status: existsSync(s.file) ? 'ok' : 'missing',
  runs: [],
  failures: [],
}));
for (const s of summaries) if (s.status === 'missing') out(`(${s.id}) scenario module not found`);

const root = mkdtempSync(join(tmpdir(), 'millrace-bench-'));
const server = await startNatsServer({ dir: join(root, 'nats') });
const ticks = clockTicks();
try {
  const nc = await connect({ servers: server.url });
  const jsm = await nc.jetstreamManager();
  const preloadSeconds = await preloadInput(nc, { stream: INPUT_STREAM, partitions: PARTITIONS, events });
  out(`preloaded ${events.toLocaleString('en-US')} events into ${INPUT_STREAM} (${PARTITIONS} partitions) in ${preloadSeconds.toFixed(1)} s; nats-server pid ${server.pid} at ${server.url}`);

  // Runs interleave (a1 b1 c1 d1 a2 ...) so a slow spell on this shared VM does not land on one scenario.
  for (let run = 1; run <= runs; run++) {
    for (const [i, s] of selected.entries()) {
      const summary = summaries[i]!;
      if (summary.status === 'missing') continue;
      const runId = `${s.id}${run}_${Date.now().toString(36)}`;
      const workDir = join(root, 'runs', runId);
      mkdirSync(workDir, { recursive: true });
      const outputStream = `bench_out_${runId}`;
      try {
        await createMillraceStream(jsm, outputStream, PARTITIONS);
        const ctx = { natsUrl: server.url, inputStream: INPUT_STREAM, partitions: PARTITIONS, events, outputStream, runId, workDir };
        const r = await spawnRun({ file: s.file, ctx, natsPid: server.pid, clockTicks: ticks, timeoutMs });
        if (r.events !== events) throw new Error(`run ${runId} reported ${r.events} events, the input has ${events}`);
        const record = { eventsPerSecond: r.events / r.seconds, seconds: r.seconds, nodeCores: r.nodeCpu / r.cpuWindow, natsCores: r.natsCpu / r.cpuWindow };
        summary.runs.push(record);
        summary.title = r.title;
        out(
          `(${s.id}) run ${run}/${runs}: ${Math.round(record.eventsPerSecond).toLocaleString('en-US')} ev/s in ${r.seconds.toFixed(2)} s, ` +
            `node ${record.nodeCores.toFixed(2)} / nats-server ${record.natsCores.toFixed(2)} cores` +
            `${r.windowSource === 'run' ? ' (CPU over the whole run: the scenario did not use ctx.timer)' : ''}; verified: ${r.verified}`,
        );
      } catch (err) {
        summary.status = 'failed';
        summary.failures.push(err instanceof Error ? err.message : String(err));
        out(`(${s.id}) run ${run}/${runs} FAILED: ${summary.failures.at(-1)}`);
      } finally {
        await deleteConsumers(jsm, INPUT_STREAM);
        await deleteStreamsExcept(jsm, INPUT_STREAM);
        rmSync(workDir, { recursive: true, force: true });
      }
    }
  }
  await nc.close();
} finally {
  await server.stop();
  rmSync(root, { recursive: true, force: true });
}

const machine = describeMachine();
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
  writeResultsSection(`Measured ${when} with \`${cmd}\` (${runs} runs per scenario).\n\n${results}\n\nMachine:\n\n${formatMachine(machine)}`);
  out('\nwrote the results section of docs/benchmarks.md');
}
if (summaries.some((s) => s.failures.length)) process.exitCode = 1;

function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new TypeError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}
