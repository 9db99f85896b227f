/**
 * Runs one scenario once, in a process of its own so JIT and GC state do not
 * leak between runs:
 *
 *   node dist/bench/scenario-child.js <scenario.js> <context-json> <nats-server-pid> <clk-tck>
 *
 * Prints one line `BENCH_RESULT <ChildReport json>`, or `BENCH_ERROR <text>`
 * and exits 1.
 */
import { pathToFileURL } from 'node:url';
import { ownCpuSeconds, procCpuSeconds } from './cpu.js';
import type { BenchContext, BenchTimer, HandoffResult, RecoveryResult, Scenario, ScenarioResult } from './scenario.js';

export type ChildReport = (ScenarioResult | RecoveryResult | HandoffResult) & ChildMeasurements;

export interface ChildMeasurements {
  /** The scenario's own title. */
  title: string;
  /** Node CPU seconds (all threads) over the window. */
  nodeCpu: number;
  /** nats-server CPU seconds over the window. */
  natsCpu: number;
  /** Wall seconds of the window the CPU figures cover. */
  cpuWindow: number;
  /** `timer`: the scenario's own window; `run`: it never started the timer, so the whole run() call. */
  windowSource: 'timer' | 'run';
}

interface Sample {
  wall: number;
  node: number;
  nats: number;
}

async function main(): Promise<void> {
  const [file, ctxJson, natsPidArg, ticksArg] = process.argv.slice(2);
  if (!file || !ctxJson || !natsPidArg || !ticksArg) throw new TypeError('usage: scenario-child <scenario.js> <context-json> <nats-pid> <clk-tck>');
  const natsPid = Number(natsPidArg);
  const ticks = Number(ticksArg);
  const sample = (): Sample => ({ wall: performance.now() / 1000, node: ownCpuSeconds(), nats: procCpuSeconds(natsPid, ticks) });

  let start: Sample | undefined;
  let stop: Sample | undefined;
  const timer: BenchTimer = {
    start() {
      start = sample();
      stop = undefined;
    },
    stop() {
      if (!start) throw new Error('timer.stop() before timer.start()');
      stop = sample();
      return stop.wall - start.wall;
    },
  };
  const ctx: BenchContext = { ...(JSON.parse(ctxJson) as Omit<BenchContext, 'timer'>), timer };

  const mod = (await import(pathToFileURL(file).href)) as { scenario?: Scenario };
  if (typeof mod.scenario?.run !== 'function') throw new Error(`${file} does not export a scenario`);
  const whole = sample();
  const result = await mod.scenario.run(ctx);
  const end = sample();
  const [from, to, windowSource] = start && stop ? [start, stop, 'timer' as const] : [whole, end, 'run' as const];
  const report: ChildReport = {
    ...result,
    title: mod.scenario.title,
    nodeCpu: to.node - from.node,
    natsCpu: to.nats - from.nats,
    cpuWindow: to.wall - from.wall,
    windowSource,
  };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(report)}\n`);
}

main().then(
  () => process.exit(0), // a scenario may leave handles open; the run is over either way
  (err: unknown) => {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stdout.write(`BENCH_ERROR ${JSON.stringify(text)}\n`);
    process.exit(1);
  },
);
