/** Carries out a fault plan against the nodes and the nats-server of a chaos run, and logs what happened. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsFixture } from '../helpers/nats.js';
import type { ChaosCluster } from './cluster.js';
import { describeFault, type PlannedFault } from './faults.js';
import type { EventPublisher } from './publisher.js';

export interface FaultContext {
  readonly cluster: ChaosCluster;
  readonly nats: NatsFixture;
  readonly publisher: EventPublisher;
  readonly leaseTtlMs: number;
  /** The run's start (epoch ms): fault times are relative to it. */
  readonly startedAt: number;
  /** No fault starts after this (epoch ms); it moves closer when the run is aborted. */
  deadline(): number;
  /** A short description of the outputs so far, for the fault log. */
  progress(): string;
  /** Records in each job's output stream now. */
  outputs(): readonly number[];
  /** Every job's output count at which its outputs are complete. */
  readonly expectedOutputs: number;
  /**
   * Before each fault, wait (after its gap) until every job's outputs grew
   * since the previous fault, at most this long, so that each fault lands on
   * a run that makes progress rather than on one still recovering.
   */
  readonly progressWaitMs: number;
  log(line: string): void;
}

export interface FaultRecord {
  /** Seconds since the run started. */
  readonly at: number;
  readonly fault: PlannedFault;
  readonly done: boolean;
  readonly outcome: string;
}

export interface FaultTally {
  kills: number;
  wipes: number;
  leaderPauses: number;
  natsRestarts: number;
  /** Planned faults not carried out (no leader to pause, node not running, deadline). */
  skipped: number;
}

/** Runs `plan` in order; resolves with what was done. Never throws for a fault that could not be done: it is logged as skipped. */
export async function runFaults(plan: readonly PlannedFault[], ctx: FaultContext): Promise<{ records: FaultRecord[]; tally: FaultTally }> {
  const records: FaultRecord[] = [];
  const tally: FaultTally = { kills: 0, wipes: 0, leaderPauses: 0, natsRestarts: 0, skipped: 0 };
  const name = (i: number) => ctx.cluster.slots[i]!.id;
  let before = ctx.outputs();
  for (const [n, fault] of plan.entries()) {
    await sleep(Math.max(0, Math.min(fault.gapMs, ctx.deadline() - Date.now())));
    const progressed = await waitForProgress(ctx, before);
    const at = (Date.now() - ctx.startedAt) / 1000;
    let result: { done: boolean; outcome: string };
    if (Date.now() >= ctx.deadline()) result = { done: false, outcome: 'skipped: the run is out of time' };
    else {
      try {
        result = await carryOut(fault, ctx, tally);
      } catch (err) {
        result = { done: false, outcome: `failed: ${(err as Error).message}` };
      }
    }
    if (!result.done) tally.skipped++;
    if (!progressed) result.outcome += ` (outputs had not grown for ${ctx.progressWaitMs / 1000} s)`;
    records.push({ at, fault, ...result });
    before = ctx.outputs();
    ctx.log(`  t+${at.toFixed(1)}s fault ${n + 1}/${plan.length}: ${describeFault(fault, name)} — ${result.outcome} [${ctx.progress()}]`);
  }
  return { records, tally };
}

async function carryOut(fault: PlannedFault, ctx: FaultContext, tally: FaultTally): Promise<{ done: boolean; outcome: string }> {
  const { cluster } = ctx;
  switch (fault.kind) {
    case 'kill': {
      const killed = await cluster.kill(fault.node, 'SIGKILL');
      if (!killed) return { done: false, outcome: 'skipped: the node was not running' };
      tally.kills++;
      if (fault.wipe) {
        await cluster.wipe(fault.node);
        tally.wipes++;
      }
      await sleep(fault.downMs);
      const life = cluster.current(fault.node) ?? (await cluster.start(fault.node));
      return { done: true, outcome: `killed pid ${killed.pid} (life ${killed.life}), restarted as pid ${life.pid}` };
    }
    case 'pause-leader': {
      const leader = await findLeader(ctx, Math.max(10_000, 3 * ctx.leaseTtlMs));
      if (!leader) return { done: false, outcome: 'skipped: no node logged that it leads' };
      const pid = cluster.current(leader.index)?.pid;
      cluster.pause(leader.index);
      tally.leaderPauses++;
      await sleep(fault.pauseMs);
      const successor = cluster.leader();
      cluster.resume(leader.index);
      const next = successor ? `${cluster.slots[successor.index]!.id} (epoch ${successor.epoch}) led meanwhile` : 'no other node led meanwhile';
      return { done: true, outcome: `paused ${cluster.slots[leader.index]!.id} (pid ${pid}, epoch ${leader.epoch}); ${next}` };
    }
    case 'nats-restart': {
      const drained = await ctx.publisher.pause();
      const started = Date.now();
      try {
        await ctx.nats.restart(fault.signal);
      } finally {
        ctx.publisher.resume();
      }
      tally.natsRestarts++;
      return { done: true, outcome: `down for ${Date.now() - started} ms${drained ? '' : ' (publisher had PubAcks outstanding)'}` };
    }
  }
}

/** Whether every job's outputs grew past `before` (or are complete) before the wait ran out. */
async function waitForProgress(ctx: FaultContext, before: readonly number[]): Promise<boolean> {
  const until = Math.min(Date.now() + ctx.progressWaitMs, ctx.deadline());
  for (;;) {
    const now = ctx.outputs();
    if (now.every((c, i) => c > before[i]! || c >= ctx.expectedOutputs)) return true;
    if (Date.now() >= until) return false;
    await sleep(100);
  }
}

async function findLeader(ctx: FaultContext, timeoutMs: number): Promise<{ index: number; epoch: number } | undefined> {
  const until = Math.min(Date.now() + timeoutMs, ctx.deadline());
  for (;;) {
    const leader = ctx.cluster.leader();
    if (leader || Date.now() >= until) return leader;
    await sleep(200);
  }
}
