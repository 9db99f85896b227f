/**
 * Processing-time timers of one keyed operator in one task: a min-heap by
 * time in memory, persisted through the same write-set as keyed state so a
 * timer survives a restart exactly when the state that set it does.
 * At most one timer per (key, time); deleting is lazy in the heap.
 */
import type { BackendWrite } from './backend.js';

export interface Timer {
  readonly ts: number;
  readonly key: string;
}

export interface TimerKeyspace {
  timer(ts: number, key: string): Uint8Array;
}

const EMPTY = new Uint8Array(0);

export class TimerQueue {
  private readonly heap: Timer[] = [];
  private readonly live = new Set<string>();
  private dirty = new Map<string, Timer & { present: boolean }>();

  constructor(private readonly keyspace: TimerKeyspace) {}

  /** Timers read back from the backend at task start. */
  restore(timers: Iterable<Timer>): void {
    for (const t of timers) {
      const id = timerId(t.ts, t.key);
      if (this.live.has(id)) continue;
      this.live.add(id);
      this.push(t);
    }
  }

  add(ts: number, key: string): void {
    const id = timerId(ts, key);
    if (this.live.has(id)) return;
    this.live.add(id);
    this.push({ ts, key });
    this.dirty.set(id, { ts, key, present: true });
  }

  delete(ts: number, key: string): void {
    const id = timerId(ts, key);
    if (!this.live.delete(id)) return;
    this.dirty.set(id, { ts, key, present: false });
  }

  get size(): number {
    return this.live.size;
  }

  /** The time of the earliest timer, or `undefined`. */
  earliest(): number | undefined {
    this.dropDeleted();
    return this.heap[0]?.ts;
  }

  /** Removes and returns the earliest timer if it is due at `now`. */
  popDue(now: number): Timer | undefined {
    this.dropDeleted();
    const top = this.heap[0];
    if (!top || top.ts > now) return undefined;
    this.pop();
    this.delete(top.ts, top.key);
    return top;
  }

  seal(into: BackendWrite[]): void {
    for (const t of this.dirty.values()) into.push({ key: this.keyspace.timer(t.ts, t.key), value: t.present ? EMPTY : undefined });
    this.dirty = new Map();
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  private dropDeleted(): void {
    while (this.heap.length > 0 && !this.live.has(timerId(this.heap[0]!.ts, this.heap[0]!.key))) this.pop();
  }

  private push(t: Timer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.ts <= t.ts) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r]!.ts < h[l]!.ts ? r : l;
      if (h[c]!.ts >= last.ts) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}

function timerId(ts: number, key: string): string {
  return `${ts}\u0000${key}`;
}
