/**
 * What a benchmark scenario is: a module under `bench/scenarios/` exporting
 * `scenario`, run by `bench/scenario-child.ts` in a fresh process per run.
 */
import type { RestoreSource } from '../cluster/checkpoint/task-snapshots.js';

/** Everything a scenario run gets from the runner. */
export interface BenchContext {
  /** `nats://127.0.0.1:<port>` of the nats-server the runner started. */
  natsUrl: string;
  /** Millrace stream name of the preloaded input, e.g. `bench_in`. */
  inputStream: string;
  /** Partitions of the input and output streams. */
  partitions: number;
  /** How many events are in the input (stream sequences 1..events). */
  events: number;
  /** A fresh millrace stream for this run's outputs, created by the runner with `partitions` partitions. */
  outputStream: string;
  /** Unique per run, `[a-z0-9_]`: use it to name durables and jobs. */
  runId: string;
  /** A fresh temp dir for this run (e.g. a LevelDB data dir); removed after the run. */
  workDir: string;
  /**
   * The timed window. Call `start()` when consuming begins and `stop()` after
   * the last input is acked and `nc.flush()` returned; `stop()` returns the
   * seconds to report. The runner measures node and nats-server CPU over this
   * window; a scenario that never calls it gets CPU over its whole `run()`.
   */
  timer: BenchTimer;
}

/** Marks the timed window of a run (see {@link BenchContext.timer}). */
export interface BenchTimer {
  start(): void;
  /** Ends the window; returns its length in seconds. */
  stop(): number;
}

export interface ScenarioResult {
  /** @default 'throughput' */
  kind?: 'throughput';
  /** Input events processed (the runner checks it equals `ctx.events`). */
  events: number;
  /** Length of the timed window. */
  seconds: number;
  /** What was checked after the window, in a few words. */
  verified: string;
  /** Millrace scenarios: checkpoints the job took in the window, the final one included. */
  checkpoints?: number;
}

/** What a recovery scenario measures: restarts of a node killed with SIGKILL. */
export interface RecoveryResult {
  kind: 'recovery';
  /** Distinct keys in the job's state when the node was killed. */
  keys: number;
  restarts: RestartMeasurement[];
  verified: string;
}

/** One SIGKILL and restart. */
export interface RestartMeasurement {
  /** `local`: restarted on the killed node's data dir; `empty`: on an empty one (restore from the snapshot store). */
  dataDir: 'local' | 'empty';
  /** SIGKILL → the first output the restarted node stored in the output stream (the server's timestamp). */
  recoveryMs: number;
  /** When the restarted node reached each step, in ms after the kill (from its log lines). */
  phases: Readonly<Record<RestartPhase, number | undefined>>;
  /** How the restarted node brought its tasks' state to the checkpoint (the "run started" log line). */
  restoredFrom: Readonly<Record<RestoreSource, number>>;
}

export type RestartPhase = 'connected' | 'leader' | 'newRun' | 'restored' | 'firstCommit';

/** What the handoff scenario measures: a node joining (tasks handed over) and a node killed. */
export interface HandoffResult {
  kind: 'handoff';
  keysPerTask: number;
  tasks: number;
  /** Each task moved to the joining node: its last record on the old node → its first on the new one. */
  moved: { task: string; pauseMs: number; restoredFrom: string }[];
  /** The coordinator's handoff: arming → the moved tasks ready on the new node. */
  handoffMs: number;
  /** SIGKILL of the node → the first output stored of a key of one of its tasks, processed elsewhere. */
  deadNodeMs: number;
  /** Why the coordinator restarted the job after the kill. */
  restartWhy: string | undefined;
  verified: string;
}

export type ScenarioId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g';

export interface Scenario {
  id: ScenarioId;
  title: string;
  /** Runs once and verifies its result; throws when anything is wrong. */
  run(ctx: BenchContext): Promise<ScenarioResult | RecoveryResult | HandoffResult>;
}
