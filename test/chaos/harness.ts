/**
 * One chaos run (issue 3's acceptance): a real nats-server, N millrace node
 * processes running two jobs at once over the same input (a keyed count and
 * a two-stage count per key, then per group), seeded events published while
 * a seeded fault schedule kills, wipes, pauses and restarts nodes and the
 * nats-server; then, once the outputs stop growing, the checker compares
 * them with references computed from the inputs alone.
 *
 * The long run (run.ts, `npm run chaos`) and the short one
 * (test/integration/chaos-short.test.ts) are two entries to `runChaos`.
 * Every process and temp dir it starts is gone when it returns or throws;
 * the logs of a failed run are copied to `keepLogsDir` first.
 */
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, StorageType, type NatsConnection } from 'nats';
import { setupNats, tempDir, type NatsFixture, type TempDir } from '../helpers/nats.js';
import { waitForNodeStarted } from '../helpers/node-process.js';
import { DEFAULT_CHAOS_PARTITIONS, type ChaosPartitions } from '../fixtures/chaos-shape.js';
import { ChaosCluster, type UnexpectedExit } from './cluster.js';
import { generateInputs } from './events.js';
import { runFaults, type FaultRecord, type FaultTally } from './fault-runner.js';
import { formatPlan, planFaults, plannedDurationMs, type NatsSignal, type PlannedFault } from './faults.js';
import { IdCoverage } from './outputs.js';
import { OutputProgress } from './progress.js';
import { EventPublisher, type PublisherStats } from './publisher.js';
import { formatResult, summarizeLogs } from './report.js';
import { judge, verdictFailures, type RunStreams, type Verdict } from './verdict.js';

const COUNT_JOB = fileURLToPath(new URL('../fixtures/chaos-count-job.js', import.meta.url));
const GROUPS_JOB = fileURLToPath(new URL('../fixtures/chaos-groups-job.js', import.meta.url));
const LOOP_PROBE = new URL('./loop-probe.js', import.meta.url).href;

export interface ChaosOptions {
  /** Input events (one output per event in each job). */
  readonly events: number;
  /** Distinct keys. @default events / 100, at least 10 */
  readonly keys?: number;
  /** Groups of the two-stage job. @default 40 */
  readonly groups?: number;
  /** Subjects of the input stream, one source partition each. @default 4 */
  readonly subjects?: number;
  /** Partitions of the jobs' keyBy and output streams. @default DEFAULT_CHAOS_PARTITIONS (8, 4, 8) */
  readonly partitions?: ChaosPartitions;
  /** millrace node processes. */
  readonly nodes: number;
  /** Seeds the events and the fault plan. */
  readonly seed: number;
  readonly kills: number;
  /** Kills that also wipe the node's data dir. @default 0 */
  readonly wipes?: number;
  readonly leaderPauses: number;
  readonly natsRestarts: readonly NatsSignal[];
  /** Random gap before each fault. */
  readonly gapMs: readonly [number, number];
  /** Longest time a killed node stays down. @default 1500 */
  readonly maxDownMs?: number;
  /** The leader stays stopped this long. @default leaseTtlMs + 3000 */
  readonly pauseMs?: number;
  /** MILLRACE_CHECKPOINT_LEASE_TTL_MS of the nodes. @default 5000 */
  readonly leaseTtlMs?: number;
  /** MILLRACE_CHECKPOINT_INTERVAL_MS of the nodes. @default 200 */
  readonly checkpointIntervalMs?: number;
  /** Events per second; 0 for as fast as possible. @default spread over the planned fault time */
  readonly publishRate?: number;
  /** Whole run, startup to verdict; past it no fault starts and the outputs are checked as they are. */
  readonly timeoutMs: number;
  /** After the faults, how long the outputs may take to complete. */
  readonly drainTimeoutMs: number;
  /** Outputs complete = at the expected count and unchanged this long. @default 3000 */
  readonly settleMs?: number;
  /** Before each fault, wait at most this long for every job's outputs to grow since the previous fault. @default 30000 */
  readonly progressWaitMs?: number;
  /** The run fails if fewer kills were carried out. @default kills */
  readonly minKills?: number;
  /** @default 'info' */
  readonly logLevel?: string;
  /** Preload loop-probe.js into the nodes: they log every event-loop stall longer than this (ms). @default off */
  readonly loopProbeMs?: number;
  /** Where a failed run's node and nats-server logs are copied; none when undefined. */
  readonly keepLogsDir?: string;
  /** Copy the logs to `keepLogsDir` after a passed run too. @default false */
  readonly keepLogsAlways?: boolean;
  /** Receives the run's log lines (plan, faults, progress, report). */
  readonly log: (line: string) => void;
  /** Ends the run early (faults stop, outputs are checked as they are). */
  readonly signal?: AbortSignal;
}

export interface ChaosDurations {
  readonly startupMs: number;
  readonly publishMs: number;
  readonly faultsMs: number;
  /** From the first publish until every output was in (or the drain gave up). */
  readonly processingMs: number;
  readonly checkMs: number;
  readonly totalMs: number;
}

export interface ChaosResult {
  readonly ok: boolean;
  /** Why the run failed, one line each; empty when ok. */
  readonly failures: readonly string[];
  /** Observations that do not fail the run (a node exiting on its own, not exiting 0 at the end). */
  readonly warnings: readonly string[];
  readonly options: Omit<ChaosOptions, 'log' | 'signal'>;
  readonly plan: readonly PlannedFault[];
  readonly faults: readonly FaultRecord[];
  readonly tally: FaultTally;
  readonly publisher: PublisherStats;
  readonly outputsComplete: boolean;
  readonly finalCounts: readonly number[];
  readonly verdict: Verdict;
  readonly unexpectedExits: readonly UnexpectedExit[];
  /** Distinct warning and error lines of the node logs, with counts. */
  readonly logSummary: readonly string[];
  readonly durations: ChaosDurations;
  /** Input events per second over the processing time (each event goes through both jobs). */
  readonly eventsPerSec: number;
  readonly keptLogs: string | undefined;
}

/** What a run started and must stop or remove, whatever happens. */
interface Resources {
  nats?: NatsFixture;
  nc?: NatsConnection;
  dataRoot?: TempDir;
  cluster?: ChaosCluster;
  progress?: OutputProgress;
  publisher?: EventPublisher;
  publishing?: Promise<void>;
}

/** Runs one chaos run; resolves with its verdict (it throws only when the harness itself cannot run). */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const { log } = o;
  const startedAt = Date.now();
  let deadline = startedAt + o.timeoutMs;
  const onAbort = () => (deadline = Math.min(deadline, Date.now()));
  o.signal?.addEventListener('abort', onAbort);
  const until = () => deadline;

  const leaseTtlMs = o.leaseTtlMs ?? 5_000;
  const keys = o.keys ?? Math.max(10, Math.round(o.events / 100));
  const groups = o.groups ?? 40;
  const subjects = o.subjects ?? 4;
  const partitions = o.partitions ?? DEFAULT_CHAOS_PARTITIONS;
  const plan = planFaults({
    seed: o.seed,
    nodes: o.nodes,
    kills: o.kills,
    wipes: o.wipes ?? 0,
    leaderPauses: o.leaderPauses,
    pauseMs: o.pauseMs ?? leaseTtlMs + 3_000,
    natsRestarts: o.natsRestarts,
    gapMs: o.gapMs,
    maxDownMs: o.maxDownMs ?? 1_500,
  });
  const planMs = plannedDurationMs(plan);
  const publishRate = o.publishRate ?? Math.ceil(o.events / Math.max(1, planMs / 1000));
  log(
    `chaos run: seed ${o.seed}, ${o.events} events over ${keys} keys (${groups} groups, ${subjects} subjects), ${o.nodes} node(s), ` +
      `partitions key ${partitions.key} / group ${partitions.group} / output ${partitions.output}, ` +
      `checkpoint every ${o.checkpointIntervalMs ?? 200} ms, lease TTL ${leaseTtlMs} ms, publishing at ${publishRate || 'max'} events/s`,
  );
  log(`fault plan (seed ${o.seed}, ~${Math.round(planMs / 1000)} s without waits for progress):\n${formatPlan(plan, (i) => `chaos-n${i + 1}`)}`);
  const inputs = generateInputs({ events: o.events, keys, groups, subjects, seed: o.seed });

  const r: Resources = {};
  let keptLogs: string | undefined;
  let finished = false;
  try {
    const nats = (r.nats = await setupNats());
    const nc = (r.nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true }));
    const jsm = await nc.jetstreamManager();
    const streams: RunStreams = { input: nats.unique('CHAOS_IN'), counts: nats.unique('CHAOS_COUNTS'), groups: nats.unique('CHAOS_GROUPS') };
    await jsm.streams.add({ name: streams.input, subjects: [`${streams.input}.>`], storage: StorageType.File });
    const subjectNames = inputs.subjectTokens.map((t) => `${streams.input}.${t}`);
    r.dataRoot = await tempDir('millrace-chaos-');
    const cluster = (r.cluster = new ChaosCluster({
      natsUrl: nats.url,
      nodes: o.nodes,
      baseDir: r.dataRoot.path,
      jobModules: [COUNT_JOB, GROUPS_JOB],
      logLevel: o.logLevel ?? 'info',
      env: {
        CHAOS_COUNT_JOB: nats.unique('chaos_count'),
        CHAOS_GROUPS_JOB: nats.unique('chaos_groups'),
        CHAOS_INPUT_STREAM: streams.input,
        CHAOS_INPUT_SUBJECTS: subjectNames.join(','),
        CHAOS_COUNT_OUTPUT: streams.counts,
        CHAOS_GROUPS_OUTPUT: streams.groups,
        CHAOS_GROUPS: String(groups),
        CHAOS_KEY_PARTITIONS: String(partitions.key),
        CHAOS_GROUP_PARTITIONS: String(partitions.group),
        CHAOS_OUTPUT_PARTITIONS: String(partitions.output),
        MILLRACE_CHECKPOINT_INTERVAL_MS: String(o.checkpointIntervalMs ?? 200),
        MILLRACE_CHECKPOINT_LEASE_TTL_MS: String(leaseTtlMs),
        ...(o.loopProbeMs ? { NODE_OPTIONS: `--import ${LOOP_PROBE}`, CHAOS_LOOP_PROBE_MS: String(o.loopProbeMs) } : {}),
      },
    }));
    await cluster.startAll();
    await Promise.all(cluster.slots.map((s) => waitForNodeStarted(cluster.current(s.index)!, 60_000)));
    const startupMs = Date.now() - startedAt;
    log(`${o.nodes} node(s) started in ${startupMs} ms: ${cluster.slots.map((s) => `${s.id} pid ${cluster.current(s.index)!.pid}`).join(', ')}`);

    // Input flows while the faults run.
    const progress = (r.progress = new OutputProgress(jsm, [streams.counts, streams.groups]));
    const encoder = new TextEncoder();
    const publisher = (r.publisher = new EventPublisher(
      nc,
      {
        count: o.events,
        id: (i) => inputs.events[i]!.id,
        subject: (i) => subjectNames[inputs.subjectOf[i]!]!,
        body: (i) => encoder.encode(JSON.stringify(inputs.events[i])),
      },
      { ratePerSec: publishRate },
    ));
    const publishStart = Date.now();
    let publishMs = 0;
    r.publishing = publisher.run(until).then(() => void (publishMs = Date.now() - publishStart));
    r.publishing.catch(() => undefined);
    const describeProgress = () => `acked ${publisher.stats.acked}, outputs ${progress.counts.join(' / ')} of ${o.events}`;
    const ticker = setInterval(() => {
      log(`  t+${((Date.now() - startedAt) / 1000).toFixed(0)}s ${describeProgress()}, ${progress.rate().join(' / ')} outputs/s`);
    }, 15_000);
    const failures: string[] = [];
    let faults: Awaited<ReturnType<typeof runFaults>>;
    let faultsMs: number;
    let done: { complete: boolean; counts: readonly number[] };
    let processingMs: number;
    try {
      const faultsStart = Date.now();
      faults = await runFaults(plan, {
        cluster,
        nats,
        publisher,
        leaseTtlMs,
        startedAt,
        deadline: until,
        progress: describeProgress,
        outputs: () => progress.counts,
        expectedOutputs: o.events,
        progressWaitMs: o.progressWaitMs ?? 30_000,
        log,
      });
      faultsMs = Date.now() - faultsStart;
      log(`faults done in ${(faultsMs / 1000).toFixed(1)} s; waiting for the outputs (at most ${(o.drainTimeoutMs / 1000).toFixed(0)} s)`);
      await r.publishing.catch((err: Error) => failures.push(`publishing failed: ${err.message}`));

      // No more faults: every node runs, and the outputs must complete.
      await cluster.ensureRunning();
      const drainUntil = Date.now() + o.drainTimeoutMs;
      // Duplicates can take a count to the expected one early: complete means every event's output is there.
      const coverage = [new IdCoverage(nc, streams.counts, o.events), new IdCoverage(nc, streams.groups, o.events)];
      const everyId = async () => {
        try {
          const distinct = [await coverage[0]!.update(), await coverage[1]!.update()];
          const ok = distinct.every((d) => d === o.events);
          if (!ok) log(`  outputs ${progress.counts.join(' / ')} hold ${distinct.join(' / ')} distinct events of ${o.events}: waiting for the rest`);
          return ok;
        } catch (err) {
          log(`  reading the outputs failed (${(err as Error).message}); trying again at their next change`);
          return false;
        }
      };
      done = await progress.waitComplete(o.events, o.settleMs ?? 3_000, () => Math.min(deadline, drainUntil), everyId);
      processingMs = (done.complete ? progress.lastChange() : Date.now()) - publishStart;
    } finally {
      clearInterval(ticker);
    }
    log(`outputs ${done.complete ? 'complete' : 'INCOMPLETE'}: ${done.counts.join(' / ')} of ${o.events} after ${(processingMs / 1000).toFixed(1)} s of processing`);
    if (!done.complete) {
      failures.push(
        `outputs incomplete ${((Date.now() - publishStart) / 1000).toFixed(0)} s after publishing began: count job ${done.counts[0]}, ` +
          `two-stage job ${done.counts[1]} of ${o.events}; last change ${((Date.now() - progress.lastChange()) / 1000).toFixed(0)} s ago`,
      );
    }
    const finalStops = await cluster.stopAll();
    await progress.stop();

    const verdict = await judge(nc, streams, inputs, partitions, startedAt);
    failures.push(...verdictFailures(verdict));
    const minKills = o.minKills ?? o.kills;
    if (faults.tally.kills < minKills) failures.push(`only ${faults.tally.kills} node kills were carried out, fewer than ${minKills}`);
    if (Date.now() > startedAt + o.timeoutMs) failures.push(`the run took longer than its timeout of ${o.timeoutMs} ms`);
    if (o.signal?.aborted) failures.push('the run was aborted');

    const warnings = cluster.unexpectedExits.map((e) => `${e.node} life ${e.life} (pid ${e.pid}) exited on its own: ${JSON.stringify(e.status)}`);
    for (const stop of finalStops) {
      if (stop.status && (stop.status.code !== 0 || stop.status.signal !== null)) {
        warnings.push(`${stop.node} did not exit 0 on the final SIGTERM: ${JSON.stringify(stop.status)}`);
      }
    }
    const ok = failures.length === 0;
    if ((!ok || o.keepLogsAlways) && o.keepLogsDir) {
      keptLogs = join(o.keepLogsDir, `seed-${o.seed}-${new Date(startedAt).toISOString().replace(/[:.]/g, '-')}`);
      await cluster.copyLogs(keptLogs);
      await cp(join(nats.dir, 'nats-server.log'), join(keptLogs, 'nats-server.log')).catch(() => undefined);
    }
    const result: ChaosResult = {
      ok,
      failures,
      warnings,
      options: withoutCallbacks(o),
      plan,
      faults: faults.records,
      tally: faults.tally,
      publisher: publisher.stats,
      outputsComplete: done.complete,
      finalCounts: done.counts,
      verdict,
      unexpectedExits: cluster.unexpectedExits,
      logSummary: summarizeLogs(cluster),
      durations: { startupMs, publishMs, faultsMs, processingMs, checkMs: verdict.checkMs, totalMs: Date.now() - startedAt },
      eventsPerSec: Math.round((o.events * 1000) / Math.max(1, processingMs)),
      keptLogs,
    };
    finished = true;
    log(formatResult(result));
    return result;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await release(r, finished ? undefined : o, log);
  }
}

/** Stops and removes everything in `r`; with `keepFor`, a harness error's node logs are copied first. */
async function release(r: Resources, keepFor: ChaosOptions | undefined, log: (line: string) => void): Promise<void> {
  r.publisher?.stop();
  await r.publishing?.catch(() => undefined);
  await r.progress?.stop();
  await r.cluster?.killAll();
  if (keepFor?.keepLogsDir && r.cluster) {
    const dir = join(keepFor.keepLogsDir, `seed-${keepFor.seed}-harness-error`);
    await mkdir(dir, { recursive: true });
    await r.cluster.copyLogs(dir);
    log(`harness error: node logs copied to ${dir}`);
  }
  await r.nc?.close().catch(() => undefined);
  await r.cluster?.removeLogs();
  await r.nats?.cleanup();
  await r.dataRoot?.cleanup();
}

function withoutCallbacks(o: ChaosOptions): Omit<ChaosOptions, 'log' | 'signal'> {
  const { log: _log, signal: _signal, ...rest } = o;
  return rest;
}
