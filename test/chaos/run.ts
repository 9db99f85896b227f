/**
 * The long chaos run from the command line (`npm run chaos`): several chaos
 * runs in a row, seeds `--seed`, `--seed + 1`, …; exits 0 only if every run
 * passed. Each run is bounded by `--timeout`; Ctrl-C ends the current run,
 * which still cleans up its processes and temp dirs.
 *
 *   node dist/test/chaos/run.js --events 1000000 --runs 3 [--nodes 3] [--seed N] [--kills 12] ...
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAllNodes } from '../helpers/node-process.js';
import type { NatsSignal } from './faults.js';
import { runChaos, type ChaosResult } from './harness.js';

const USAGE = `usage: node dist/test/chaos/run.js [options]
  --events N          input events per run (default 1000000)
  --runs N            runs in a row (default 3)
  --nodes N           millrace node processes (default 3)
  --subjects N        input subjects = source partitions (default 3)
  --partitions K,G,O  partitions of the keyBy(key), keyBy(group) and output streams (default 6,3,6)
  --seed N            seed of the first run; run i uses seed + i (default 20240301)
  --kills N           node SIGKILLs per run (default 12)
  --wipes N           of which also wipe the data dir (default 2)
  --pauses N          leader SIGSTOPs per run (default 2)
  --nats LIST         nats-server restarts, e.g. SIGTERM,SIGKILL (default SIGTERM,SIGKILL; "none" for none)
  --gap MIN-MAX       seconds between faults (default 4-9)
  --progress-wait S   before each fault, wait at most S seconds for both jobs' outputs to grow (default 90)
  --lease-ttl MS      leader lease TTL (default 5000)
  --interval MS       checkpoint interval (default 200)
  --rate N            events/s published (default 2000, about what 3 nodes on 2 vCPUs process; 0 = max)
  --timeout S         per run (default 2700)
  --drain S           after the faults, time for the outputs to complete (default 1200)
  --log-level L       node log level (default info)
  --keep-logs DIR     where a failed run's logs go (default <tmp>/millrace-chaos-failures)
  --keep-logs-always  keep the logs of passed runs too
  --loop-probe MS     nodes log event-loop stalls longer than MS (loop-probe.ts)`;

function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '1000000' },
      runs: { type: 'string', default: '3' },
      nodes: { type: 'string', default: '3' },
      seed: { type: 'string', default: '20240301' },
      kills: { type: 'string', default: '12' },
      wipes: { type: 'string', default: '2' },
      pauses: { type: 'string', default: '2' },
      nats: { type: 'string', default: 'SIGTERM,SIGKILL' },
      gap: { type: 'string', default: '4-9' },
      'lease-ttl': { type: 'string', default: '5000' },
      interval: { type: 'string', default: '200' },
      rate: { type: 'string', default: '2000' },
      timeout: { type: 'string', default: '2700' },
      drain: { type: 'string', default: '1200' },
      'log-level': { type: 'string', default: 'info' },
      'keep-logs': { type: 'string', default: join(tmpdir(), 'millrace-chaos-failures') },
      'keep-logs-always': { type: 'boolean', default: false },
      'loop-probe': { type: 'string' },
      'progress-wait': { type: 'string', default: '90' },
      subjects: { type: 'string', default: '3' },
      partitions: { type: 'string', default: '6,3,6' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return Promise.resolve(0);
  }
  const int = (name: string, raw: string, min = 0): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new TypeError(`--${name} must be an integer >= ${min}, got ${raw}`);
    return n;
  };
  const [gapLo, gapHi] = values.gap.split('-').map(Number);
  if (!(gapLo! >= 0 && gapHi! >= gapLo!)) throw new TypeError(`--gap must be MIN-MAX seconds, got ${values.gap}`);
  const natsRestarts = values.nats === 'none' ? [] : values.nats.split(',').map((s) => s.trim().toUpperCase());
  for (const s of natsRestarts) if (s !== 'SIGTERM' && s !== 'SIGKILL') throw new TypeError(`--nats takes SIGTERM and SIGKILL, got ${s}`);
  const [key, group, output] = values.partitions.split(',').map((p) => int('partitions', p, 1));
  if (output === undefined) throw new TypeError(`--partitions must be KEY,GROUP,OUTPUT, got ${values.partitions}`);
  const runs = int('runs', values.runs, 1);
  const seed = int('seed', values.seed);
  const timeoutMs = int('timeout', values.timeout, 1) * 1000;
  return runAll(runs, (i, signal) =>
    runChaos({
      events: int('events', values.events, 1),
      nodes: int('nodes', values.nodes, 1),
      subjects: int('subjects', values.subjects, 1),
      partitions: { key: key!, group: group!, output },
      seed: seed + i,
      kills: int('kills', values.kills),
      wipes: int('wipes', values.wipes),
      leaderPauses: int('pauses', values.pauses),
      natsRestarts: natsRestarts as NatsSignal[],
      gapMs: [gapLo! * 1000, gapHi! * 1000],
      leaseTtlMs: int('lease-ttl', values['lease-ttl'], 100),
      checkpointIntervalMs: int('interval', values.interval, 1),
      publishRate: int('rate', values.rate),
      timeoutMs,
      drainTimeoutMs: int('drain', values.drain, 1) * 1000,
      progressWaitMs: int('progress-wait', values['progress-wait']) * 1000,
      minKills: Math.min(10, int('kills', values.kills)),
      logLevel: values['log-level'],
      keepLogsDir: values['keep-logs'],
      keepLogsAlways: values['keep-logs-always'],
      loopProbeMs: values['loop-probe'] === undefined ? undefined : int('loop-probe', values['loop-probe'], 1),
      log: (line) => process.stdout.write(`${line}\n`),
      signal,
    }),
    timeoutMs,
  );
}

async function runAll(runs: number, run: (i: number, signal: AbortSignal) => Promise<ChaosResult>, timeoutMs: number): Promise<number> {
  const results: ChaosResult[] = [];
  const controller = new AbortController();
  let interrupts = 0;
  const interrupt = (signal: string) => {
    if (++interrupts > 1) void killAllNodes().finally(() => process.exit(130));
    process.stdout.write(`\n${signal}: ending the current run (again to force)\n`);
    controller.abort();
  };
  process.on('SIGINT', () => interrupt('SIGINT'));
  process.on('SIGTERM', () => interrupt('SIGTERM'));
  for (let i = 0; i < runs && !controller.signal.aborted; i++) {
    process.stdout.write(`\n##### chaos run ${i + 1} of ${runs} #####\n`);
    // A last resort if the run hangs past its own timeout: the harness aborts, then the process gives up.
    const watchdog = setTimeout(() => controller.abort(), timeoutMs + 60_000);
    const hardStop = setTimeout(() => {
      process.stdout.write('chaos run hung past its timeout: killing the nodes and exiting\n');
      void killAllNodes().finally(() => process.exit(1));
    }, timeoutMs + 180_000);
    try {
      results.push(await run(i, controller.signal));
    } finally {
      clearTimeout(watchdog);
      clearTimeout(hardStop);
    }
  }
  process.stdout.write(`\n##### summary #####\n`);
  for (const [i, r] of results.entries()) {
    const d = r.durations;
    process.stdout.write(
      `run ${i + 1} seed ${r.options.seed}: ${r.ok ? 'PASSED' : 'FAILED'} — ${r.options.events} events, ${r.tally.kills} kills ` +
        `(${r.tally.wipes} wiped), ${r.tally.leaderPauses} leader pauses, ${r.tally.natsRestarts} nats restarts; ` +
        `processing ${(d.processingMs / 1000).toFixed(1)} s, total ${(d.totalMs / 1000).toFixed(1)} s, ${r.eventsPerSec} events/s` +
        `${r.ok ? '' : `\n  ${r.failures.join('\n  ')}`}\n`,
    );
  }
  const passed = results.length === runs && results.every((r) => r.ok);
  process.stdout.write(`${passed ? 'all runs passed' : 'FAILED'}\n`);
  return passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error)?.stack ?? String(err)}\n`);
    void killAllNodes().finally(() => process.exit(1));
  },
);
