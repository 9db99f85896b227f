/**
 * JetStream publishing without `js.publish()`: `nc.publish()` with a reply
 * subject under ONE wildcard inbox subscription, the PubAck parsed and
 * checked, up to `window` publishes outstanding. This is the protocol-level
 * ceiling of NATS-BASELINE.md ("raw nc.publish pipe").
 */
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type NatsError, type Subscription } from 'nats';

interface PubAck {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

const decoder = new TextDecoder();

export class RawPublisher {
  /** Publishes sent and not yet acknowledged. */
  outstanding = 0;
  /** PubAcks that reported `duplicate: true`. */
  duplicates = 0;
  /** The first failure; once set, every wait rejects with it. */
  failure: Error | undefined;

  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly tags = new Map<number, number>();
  private next = 0;
  private waiting: { resolve: () => void; reject: (e: Error) => void; until: number } | undefined;

  /** `onAck(tag)` runs once per successful PubAck, with the tag given to `publish()`. */
  constructor(
    private readonly nc: NatsConnection,
    private readonly window: number,
    private readonly onAck: (tag: number) => void,
  ) {
    this.prefix = createInbox();
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (err, m) => this.receive(err, m) });
  }

  /** Undefined when a slot is free (so the hot path does not await); else resolves when one is. */
  ready(): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.outstanding < this.window) return undefined;
    return this.wait(this.window - 1);
  }

  publish(subject: string, data: Uint8Array, headers: MsgHdrs, tag: number): void {
    const n = this.next++;
    this.tags.set(n, tag);
    this.outstanding++;
    this.nc.publish(subject, data, { reply: `${this.prefix}.${n}`, headers });
  }

  /** Resolves when every publish so far is acknowledged. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.outstanding === 0 ? Promise.resolve() : this.wait(0);
  }

  close(): void {
    this.sub.unsubscribe();
  }

  private wait(until: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, until };
    });
  }

  private receive(err: NatsError | null, m: Msg): void {
    if (this.failure) return;
    if (err) return this.fail(err);
    const n = Number(m.subject.slice(this.prefix.length + 1));
    const tag = this.tags.get(n);
    if (tag === undefined) return this.fail(new Error(`PubAck for unknown reply ${m.subject}`));
    this.tags.delete(n);
    if (m.data.length === 0) {
      // An empty reply is a status message, e.g. 503 "no responders": no stream took the subject.
      return this.fail(new Error(`publish ${n} got status ${m.headers?.code ?? '?'} ${m.headers?.description ?? ''}`));
    }
    const ack = JSON.parse(decoder.decode(m.data)) as PubAck;
    if (ack.error !== undefined || ack.stream === undefined) {
      return this.fail(new Error(`publish ${n} rejected: ${decoder.decode(m.data)}`));
    }
    if (ack.duplicate) this.duplicates++;
    this.outstanding--;
    this.onAck(tag);
    const w = this.waiting;
    if (w && this.outstanding <= w.until) {
      this.waiting = undefined;
      w.resolve();
    }
  }

  private fail(e: Error): void {
    this.failure = e;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(e);
  }
}
