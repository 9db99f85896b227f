/**
 * Runs an async step on the latest value offered to it: one run at a time,
 * runs starting at least `minIntervalMs` apart, and values offered meanwhile
 * replacing each other. For work where only the newest input matters and
 * piling up calls would hurt, like the coordinator's cleanup after a commit
 * (each purge of an internal stream costs the nats-server a scan; one per
 * commit, unawaited, queued seconds of work behind the coordinator's
 * connection after a server restart).
 */
export class LatestOnly<T> {
  private latest: { readonly value: T } | undefined;
  private running = false;
  private lastStart = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly step: (value: T) => Promise<void>,
    private readonly minIntervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Runs `step(value)` as soon as the rules allow, unless a newer value comes first. */
  offer(value: T): void {
    this.latest = { value };
    this.schedule();
  }

  /** Drops the value waiting, if any; a run in progress finishes. */
  cancel(): void {
    this.latest = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.running || this.timer || !this.latest) return;
    const wait = Math.max(0, this.lastStart + this.minIntervalMs - Date.now());
    this.timer = setTimeout(() => void this.run(), wait);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    const next = this.latest;
    if (!next) return;
    this.latest = undefined;
    this.running = true;
    this.lastStart = Date.now();
    try {
      await this.step(next.value);
    } catch (err) {
      this.onError(err);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}
