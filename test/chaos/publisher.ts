/**
 * Publishes the chaos input to a plain JetStream stream while the faults run:
 * at a steady rate, in order, each event under its id as `Nats-Msg-Id`, with
 * at most `window` PubAcks outstanding.
 *
 * Order matters: a key's events must be stored in seq order. So the harness
 * pauses the publisher around a nats-server restart (pause() waits until
 * every event sent has its PubAck). Should PubAcks stop arriving anyway, the
 * publisher resends every unacknowledged event in order under the same id,
 * and JetStream's duplicate window drops the copies already stored. That
 * keeps the order only if the server stored a prefix of what was sent, which
 * the harness verifies afterwards by reading the input stream back
 * (input-check.ts) rather than trusting this file.
 */
import { createInbox, headers, type NatsConnection, type Subscription } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';

export interface PublisherOptions {
  /** Events per second; 0 publishes as fast as PubAcks come. */
  readonly ratePerSec: number;
  /** PubAcks outstanding at most. @default 2000 */
  readonly window?: number;
  /** No PubAck for this long while events are outstanding: resend them. @default 3000 */
  readonly resendAfterMs?: number;
}

export interface PublisherStats {
  readonly sent: number;
  readonly acked: number;
  /** Events sent again after PubAcks stopped. */
  readonly resent: number;
  /** PubAcks saying the stream already had the event (a resend of a stored one). */
  readonly duplicateAcks: number;
  /** Negative or malformed PubAcks (e.g. 503 while the stream recovers); those events are resent. */
  readonly rejected: number;
}

export interface Publication {
  readonly count: number;
  /** The id (`Nats-Msg-Id`) of event `i`. */
  id(i: number): string;
  subject(i: number): string;
  body(i: number): Uint8Array;
}

const DEFAULT_WINDOW = 2_000;
const DEFAULT_RESEND_AFTER_MS = 3_000;
const decoder = new TextDecoder();

export class EventPublisher {
  private readonly acked: Uint8Array;
  private low = 0;
  private next = 0;
  private ackedCount = 0;
  private resent = 0;
  private duplicateAcks = 0;
  private rejected = 0;
  private lastProgress = Date.now();
  private paused = false;
  /** After a pause: one event at a time until the stream acknowledges again. */
  private probing = false;
  private pausedAt = 0;
  private pausedMs = 0;
  private startedAt = 0;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly inbox = createInbox();
  private sub: Subscription | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly publication: Publication,
    private readonly options: PublisherOptions,
  ) {
    this.acked = new Uint8Array(publication.count);
  }

  get stats(): PublisherStats {
    return { sent: this.next, acked: this.ackedCount, resent: this.resent, duplicateAcks: this.duplicateAcks, rejected: this.rejected };
  }

  /** Publishes everything; resolves once every event has its PubAck, rejects when `deadline()` (epoch ms) passes first. */
  async run(deadline: () => number): Promise<void> {
    const window = this.options.window ?? DEFAULT_WINDOW;
    const resendAfterMs = this.options.resendAfterMs ?? DEFAULT_RESEND_AFTER_MS;
    const count = this.publication.count;
    this.sub = this.nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => !err && this.onAck(msg.subject, msg.data, msg.headers?.code) });
    await this.nc.flush();
    this.startedAt = Date.now();
    try {
      while (this.low < count) {
        if (this.stopped) throw new Error('publisher stopped');
        if (Date.now() > deadline()) throw new Error(`publishing timed out: ${this.ackedCount} of ${count} events acknowledged`);
        if (this.probing) this.probe();
        else if (!this.paused) {
          const allowed = this.allowed(count);
          while (this.next < allowed && this.next - this.low < window) this.send(this.next++);
          if (this.next > this.low && Date.now() - this.lastProgress > resendAfterMs) this.resend();
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 20);
        });
      }
    } finally {
      this.sub.unsubscribe();
    }
  }

  /** Stops sending and resolves once every event sent has its PubAck (or after `timeoutMs`, leaving the rest to resends). */
  async pause(timeoutMs = 10_000): Promise<boolean> {
    if (!this.paused) {
      this.paused = true;
      this.pausedAt = Date.now();
    }
    const until = Date.now() + timeoutMs;
    while (this.ackedCount < this.next && Date.now() < until) await sleep(20);
    return this.ackedCount >= this.next;
  }

  /**
   * Sends again, one event at a time until a PubAck comes: right after a
   * nats-server restart the stream may drop what arrives before it has
   * recovered while storing what comes later, which would break a key's order.
   */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.probing = true;
    this.probeSentAt = 0;
    this.probeIndex = -1;
    this.pausedMs += Date.now() - this.pausedAt;
    this.lastProgress = Date.now();
    this.wake?.();
  }

  /** Ends run() with an error at its next step. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private probeSentAt = 0;
  private probeIndex = -1;

  /**
   * While probing: (re)sends one event alone every 500 ms (the lowest
   * unacknowledged, else the next) until it is acknowledged; then resends
   * whatever else is unacknowledged, in order, before anything new.
   */
  private probe(): void {
    if (this.probeIndex >= 0 && this.acked[this.probeIndex]) {
      this.probing = false;
      this.probeIndex = -1;
      if (this.next > this.low) this.resend();
      return;
    }
    if (Date.now() - this.probeSentAt < 500) return;
    if (this.probeIndex < 0) {
      if (this.low < this.next) this.probeIndex = this.low;
      else if (this.next < this.publication.count) this.probeIndex = this.next++;
      else return;
    } else this.resent++;
    this.send(this.probeIndex);
    this.probeSentAt = Date.now();
  }

  private allowed(count: number): number {
    if (this.options.ratePerSec <= 0) return count;
    const activeMs = Date.now() - this.startedAt - this.pausedMs;
    return Math.min(count, Math.floor((this.options.ratePerSec * activeMs) / 1000) + 1);
  }

  private send(i: number): void {
    const h = headers();
    h.set('Nats-Msg-Id', this.publication.id(i));
    this.nc.publish(this.publication.subject(i), this.publication.body(i), { reply: `${this.inbox}.${i}`, headers: h });
  }

  private resend(): void {
    for (let i = this.low; i < this.next; i++) {
      if (this.acked[i]) continue;
      this.send(i);
      this.resent++;
    }
    this.lastProgress = Date.now();
  }

  private onAck(subject: string, data: Uint8Array, status: number | undefined): void {
    const i = Number(subject.slice(this.inbox.length + 1));
    let ack: { seq?: number; duplicate?: boolean; error?: unknown } | undefined;
    try {
      ack = status && status >= 300 ? undefined : (JSON.parse(decoder.decode(data)) as typeof ack);
    } catch {
      ack = undefined;
    }
    if (!ack || ack.error || !ack.seq) {
      this.rejected++;
      return;
    }
    if (ack.duplicate) this.duplicateAcks++;
    if (this.acked[i]) return;
    this.acked[i] = 1;
    this.ackedCount++;
    this.lastProgress = Date.now();
    while (this.low < this.acked.length && this.acked[this.low]) this.low++;
    this.wake?.();
  }
}
