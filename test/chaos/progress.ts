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
   * Resolves once every stream holds at least `expected` records, the counts
   * have not changed for `settleMs` and `verify()` (if given) agrees: a count
   * can reach `expected` through duplicates while records are still to come,
   * so `verify` looks at what the streams hold. After a refusal it is asked
   * again only once the counts have changed and settled again; with no change
   * for `stallMs` after a refusal, or when `deadline()` (epoch ms) comes
   * first, the result is `complete: false`.
   */
  async waitComplete(
    expected: number,
    settleMs: number,
    deadline: () => number,
    verify?: () => Promise<boolean>,
    stallMs = 120_000,
  ): Promise<{ complete: boolean; counts: readonly number[] }> {
    let refusedAt = 0;
    for (;;) {
      const reached = this.latest.every((c) => c >= expected);
      const changed = this.lastChange();
      if (reached && Date.now() - changed >= settleMs && changed > refusedAt) {
        if (!verify || (await verify())) return { complete: true, counts: this.latest };
        refusedAt = Date.now();
      }
      if (Date.now() >= deadline()) return { complete: false, counts: this.latest };
      if (refusedAt > 0 && this.lastChange() <= refusedAt && Date.now() - refusedAt >= stallMs) return { complete: false, counts: this.latest };
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
