/**
 * The fault schedule of a chaos run, drawn from a seed before the run starts
 * and printed, so a failing run can be replayed with the same faults in the
 * same order (the timing of the system under test still varies).
 */
import { random } from '../../examples/transactions/generator.js';

export type NatsSignal = 'SIGTERM' | 'SIGKILL';

export type PlannedFault =
  | {
      readonly kind: 'kill';
      /** Wait this long after the previous fault ended. */
      readonly gapMs: number;
      readonly node: number;
      /** Remove the node's data dir before the restart. */
      readonly wipe: boolean;
      /** Between the SIGKILL and the restart. */
      readonly downMs: number;
    }
  | { readonly kind: 'pause-leader'; readonly gapMs: number; readonly pauseMs: number }
  | { readonly kind: 'nats-restart'; readonly gapMs: number; readonly signal: NatsSignal };

export interface FaultPlanOptions {
  readonly seed: number;
  readonly nodes: number;
  /** SIGKILLs of a random node, each followed by a restart. */
  readonly kills: number;
  /** How many of the kills also wipe the node's data dir. */
  readonly wipes: number;
  /** SIGSTOPs of the current leader, each `pauseMs` long, then SIGCONT. */
  readonly leaderPauses: number;
  readonly pauseMs: number;
  /** One nats-server restart per entry, stopped with that signal. */
  readonly natsRestarts: readonly NatsSignal[];
  /** Bounds of the random gap before each fault. */
  readonly gapMs: readonly [number, number];
  /** Upper bound of the random time a killed node stays down. */
  readonly maxDownMs: number;
}

/** Draws the faults: kinds in a random order, random gaps, nodes and downtimes. */
export function planFaults(o: FaultPlanOptions): PlannedFault[] {
  if (o.wipes > o.kills) throw new TypeError(`planFaults: ${o.wipes} wipes need at least as many kills, got ${o.kills}`);
  const next = random(o.seed ^ 0x0fa17);
  const between = (lo: number, hi: number) => Math.round(lo + next() * (hi - lo));
  const kinds: ('kill' | 'pause-leader' | NatsSignal)[] = [
    ...Array<'kill'>(o.kills).fill('kill'),
    ...Array<'pause-leader'>(o.leaderPauses).fill('pause-leader'),
    ...o.natsRestarts,
  ];
  shuffle(kinds, next);
  const wiped = new Set(shuffle(Array.from({ length: o.kills }, (_, i) => i), next).slice(0, o.wipes));
  let kill = 0;
  return kinds.map((kind) => {
    const gapMs = between(o.gapMs[0], o.gapMs[1]);
    if (kind === 'kill') {
      return { kind, gapMs, node: Math.floor(next() * o.nodes), wipe: wiped.has(kill++), downMs: between(0, o.maxDownMs) };
    }
    if (kind === 'pause-leader') return { kind, gapMs, pauseMs: o.pauseMs };
    return { kind: 'nats-restart', gapMs, signal: kind };
  });
}

/** The plan's length in wall time, without the time a restart takes. */
export function plannedDurationMs(plan: readonly PlannedFault[]): number {
  return plan.reduce((ms, f) => ms + f.gapMs + (f.kind === 'kill' ? f.downMs : f.kind === 'pause-leader' ? f.pauseMs : 0), 0);
}

export function describeFault(f: PlannedFault, nodeName: (i: number) => string): string {
  switch (f.kind) {
    case 'kill':
      return `SIGKILL ${nodeName(f.node)}${f.wipe ? ', wipe its data dir' : ''}, restart after ${f.downMs} ms`;
    case 'pause-leader':
      return `SIGSTOP the leader for ${f.pauseMs} ms, then SIGCONT`;
    case 'nats-restart':
      return `restart nats-server with ${f.signal}`;
  }
}

export function formatPlan(plan: readonly PlannedFault[], nodeName: (i: number) => string): string {
  return plan.map((f, i) => `  ${String(i + 1).padStart(2)}. after ${(f.gapMs / 1000).toFixed(1)} s: ${describeFault(f, nodeName)}`).join('\n');
}

function shuffle<T>(items: T[], next: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
