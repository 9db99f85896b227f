/**
 * Barrier alignment for a task whose input carries the records of several
 * upstream tasks interleaved on one subject (decision 003).
 *
 * Once producer A's barrier n has arrived, A's later records belong to
 * epoch n+1: they are held until barrier n has come from every producer,
 * then the task seals checkpoint n and processes what was held. A barrier of
 * a newer checkpoint abandons an alignment that never completed (that
 * checkpoint was aborted upstream): what was held is pre-barrier data of the
 * newer one and is processed before it. Holding is bounded; past the bound
 * the task gives the checkpoint up, processes what it held and lets the
 * coordinator's timeout abort the checkpoint.
 */
import type { InputMessage } from './ports.js';

/** What a barrier's arrival asks of the task, in this order. */
export interface BarrierOutcome {
  /** Process these now, before anything else (an abandoned alignment's held records). */
  readonly before: readonly InputMessage[];
  /** Seal this checkpoint now, if set. */
  readonly complete: number | undefined;
  /** Then process these (the held records of the completed alignment). */
  readonly after: readonly InputMessage[];
  /**
   * With `complete`: the producers whose barrier came before the last one,
   * with their barrier's input sequence. Their records after it are held, not
   * in the sealed state, though they lie before the task's position: a task
   * resumed from this checkpoint alone must read them again (TaskPosition.held).
   */
  readonly held: readonly (readonly [producer: string, barrierSeq: number])[];
}

const NOTHING: BarrierOutcome = Object.freeze({ before: [], complete: undefined, after: [], held: [] });

export class BarrierAligner {
  /** The checkpoint being aligned; 0 when none is. */
  private aligning = 0;
  /** Producers whose barrier of the checkpoint being aligned came, with its input sequence. */
  private readonly arrived = new Map<string, number>();
  private held: InputMessage[] = [];
  /** Barriers up to this checkpoint are done with (sealed, given up, or restored). */
  private settled = 0;

  constructor(
    private readonly upstream: ReadonlySet<string>,
    private readonly maxHeld: number,
  ) {}

  /** The task restored checkpoint `checkpoint`: barriers up to it are old. */
  restoredFrom(checkpoint: number): void {
    this.reset();
    this.settled = checkpoint;
  }

  /** Whether a record of `producer` must wait (it is held), because that producer's barrier already came. */
  holds(producer: string, msg: InputMessage): boolean {
    if (this.aligning === 0 || !this.arrived.has(producer)) return false;
    this.held.push(msg);
    return true;
  }

  /** Whether holding more would pass the bound: the task should `giveUp()`. */
  get full(): boolean {
    return this.held.length >= this.maxHeld;
  }

  /** Abandons the current alignment; returns the held records, to process now. */
  giveUp(): InputMessage[] {
    const held = this.held;
    this.settled = Math.max(this.settled, this.aligning);
    this.reset();
    return held;
  }

  /** Barrier `checkpoint` from `producer` arrived, at input sequence `seq`. */
  barrier(checkpoint: number, producer: string, seq: number): BarrierOutcome {
    if (checkpoint <= this.settled || !this.upstream.has(producer) || checkpoint < this.aligning) return NOTHING;
    let before: InputMessage[] = [];
    if (checkpoint > this.aligning) {
      before = this.held;
      this.reset();
      this.aligning = checkpoint;
    }
    if (!this.arrived.has(producer)) this.arrived.set(producer, seq);
    if (this.arrived.size < this.upstream.size) return before.length === 0 ? NOTHING : { before, complete: undefined, after: [], held: [] };
    const after = this.held;
    const held = [...this.arrived].filter(([p]) => p !== producer);
    this.settled = checkpoint;
    this.reset();
    return { before, complete: checkpoint, after, held };
  }

  /** The checkpoint being aligned, 0 when none. */
  get current(): number {
    return this.aligning;
  }

  private reset(): void {
    this.aligning = 0;
    this.arrived.clear();
    this.held = [];
  }
}
