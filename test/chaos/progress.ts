/**
 * Watches how many records the jobs' output streams hold, once a second,
 * through nats-server restarts (a failed poll keeps the last counts), and
 * decides when a run's outputs are complete: every stream at or above the
 * expected count and no longer growing.
 */
import type { JetStreamManager } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProgressSample {
  readonly at: number;
  readonly counts: readonly number[];
}

export class OutputProgress {
  private latest: number[];
  private readonly samples: ProgressSample[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly jsm: JetStreamManager,
    readonly streams: readonly string[],
    private readonly intervalMs = 1_000,
  ) {
    this.latest = streams.map(() => 0);
    this.loop = this.run();
  }

  get counts(): readonly number[] {
    return this.latest;
  }

  /** When the counts last changed (epoch ms). */
  lastChange(): number {
    for (let i = this.samples.length - 1; i > 0; i--) {
      if (this.samples[i]!.counts.some((c, s) => c !== this.samples[i - 1]!.counts[s])) return this.samples[i]!.at;
    }
    return this.samples[0]?.at ?? Date.now();
  }

  /**
   * Resolves once every stream holds at least `expected` records and the
   * counts have not changed for `settleMs`; `complete: false` when `deadline()`
   * (epoch ms) comes first.
   */
  async waitComplete(expected: number, settleMs: number, deadline: () => number): Promise<{ complete: boolean; counts: readonly number[] }> {
    for (;;) {
      const reached = this.latest.every((c) => c >= expected);
      if (reached && Date.now() - this.lastChange() >= settleMs) return { complete: true, counts: this.latest };
      if (Date.now() >= deadline()) return { complete: false, counts: this.latest };
      await sleep(Math.min(this.intervalMs, Math.max(0, deadline() - Date.now())));
    }
  }

  /** Records per second over the last `windowMs`, per stream. */
  rate(windowMs = 10_000): number[] {
    const last = this.samples.at(-1);
    if (!last) return this.streams.map(() => 0);
    const first = this.samples.find((s) => s.at >= last.at - windowMs) ?? last;
    const ms = Math.max(1, last.at - first.at);
    return last.counts.map((c, i) => Math.round(((c - first.counts[i]!) * 1000) / ms));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const counts = await Promise.all(
        this.streams.map((s, i) =>
          this.jsm.streams.info(s).then(
            (info) => info.state.messages,
            () => this.latest[i]!,
          ),
        ),
      );
      this.latest = counts;
      this.samples.push({ at: Date.now(), counts });
      await sleep(this.intervalMs);
    }
  }
}
