/**
 * Hosts one keyed actor definition inside a task: binds its declared state to
 * the task's store, keeps the key being processed, and turns what handlers
 * return or emit into records for the rest of the chain.
 */
import type { KeyedContext, KeyedDefinition, TimerService } from '../api/keyed.js';
import type { StateHandles, StateSpecs } from '../api/state.js';
import { bindState } from '../state/handles.js';
import type { KeyedStore } from '../state/keyed-store.js';
import type { Timer, TimerQueue } from '../state/timer-queue.js';
import { userError, type Emit } from './chain.js';

export class KeyedOperator {
  private key = '';
  private timestamp = 0;
  private readonly ctx: KeyedContext<StateSpecs, unknown>;

  constructor(
    private readonly definition: KeyedDefinition<unknown, unknown, StateSpecs>,
    readonly store: KeyedStore,
    readonly timers: TimerQueue,
    private readonly downstream: Emit,
    now: () => number,
    /** Told when a handler adds a timer, so the task can reschedule its wake-up. */
    onTimerAdded: () => void,
  ) {
    const state: StateHandles<StateSpecs> = bindState(definition.state, store, () => this.key);
    const timerService: TimerService = {
      processingTime: (ts) => {
        if (!Number.isFinite(ts)) throw new TypeError(`timers.processingTime(): ts must be a finite number, got ${ts}`);
        timers.add(Math.trunc(ts), this.key);
        onTimerAdded();
      },
      deleteProcessingTime: (ts) => timers.delete(Math.trunc(ts), this.key),
      now,
    };
    const self = this;
    this.ctx = {
      get key() {
        return self.key;
      },
      get timestamp() {
        return self.timestamp;
      },
      state,
      timers: timerService,
      emit: (value, key) => downstream(value, key ?? self.key, self.timestamp),
    };
  }

  get name(): string {
    return this.definition.name;
  }

  /** The chain entry for this operator. */
  readonly process: Emit = (value, key, ts) => {
    this.key = key;
    this.timestamp = ts;
    let out: unknown;
    try {
      out = this.definition.onRecord(value, this.ctx);
    } catch (err) {
      throw userError(this.definition.name, err);
    }
    this.forward(out);
  };

  fire(timer: Timer): void {
    this.key = timer.key;
    this.timestamp = timer.ts;
    const onTimer = this.definition.onTimer;
    if (!onTimer) return;
    let out: unknown;
    try {
      out = onTimer.call(this.definition, timer.ts, this.ctx);
    } catch (err) {
      throw userError(this.definition.name, err);
    }
    this.forward(out);
  }

  private forward(out: unknown): void {
    if (out === undefined) return;
    if (Array.isArray(out)) for (const v of out) this.downstream(v, this.key, this.timestamp);
    else this.downstream(out, this.key, this.timestamp);
  }
}
