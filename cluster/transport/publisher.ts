/**
 * Publishes to JetStream without nats.js's per-request machinery: a plain
 * `nc.publish()` with a reply subject under one wildcard inbox subscription,
 * PubAcks checked here, thousands outstanding. This is the protocol ceiling
 * of design/NATS-BASELINE.md (b2) and the only way outputs leave a task.
 *
 * Every message carries a `Nats-Msg-Id`, so a publish retried after a lost
 * PubAck, or replayed after a crash, is dropped by JetStream as a duplicate.
 *
 * Publishes are stored in the order they were made. One connection delivers
 * in order, so the only way to lose a message while a later one is stored is
 * a broken connection: the messages in flight when it broke are gone, and
 * anything sent after the reconnect would overtake them. So the publisher
 * holds its publishes from the moment the connection drops and, once it is
 * back, sends every unacknowledged message again in order before anything
 * new; the msg ids drop the copies the server had already stored.
 */
import {
  createInbox,
  Events,
  headers as natsHeaders,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Status,
  type Subscription,
} from 'nats';
import { ErrorCodes, millraceError, type MillraceError } from '../../errors.js';
import { MSG_ID_HEADER } from '../../runtime/wire/headers.js';

export interface PublisherOptions {
  /** PubAcks awaited at most before `publish` callers should wait (see `hasCapacity`). @default 8192 */
  window?: number;
  /** A publish without a PubAck after this long, on a connection that stayed up, is sent again with the same msg id. @default 5000 */
  ackTimeoutMs?: number;
  /** Sends of one message on a connection that stayed up before the publisher fails with MR_PUBLISH_TIMEOUT. @default 6 */
  maxAttempts?: number;
}

export const DEFAULT_PUBLISH_WINDOW = 8192;
const DEFAULT_ACK_TIMEOUT_MS = 5000;
const DEFAULT_MAX_ATTEMPTS = 6;

interface Pending {
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs;
  sentAt: number;
  attempts: number;
}

interface Waiter {
  /** Resolve once every publish numbered below this is acknowledged. */
  below: number;
  resolve(): void;
  reject(err: unknown): void;
}

const decoder = new TextDecoder();

export class Publisher {
  readonly window: number;
  private readonly ackTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly prefix: string;
  private readonly sub: Subscription;
  /** Unacknowledged publishes, insertion-ordered: a resend after a reconnect walks them oldest first. */
  private readonly pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  private next = 0;
  /** Every publish numbered below this is acknowledged (see `oldest`). */
  private low = 0;
  private failure: MillraceError | undefined;
  private readonly retryTimer: NodeJS.Timeout;
  /** Publishes held until the end of this turn of the event loop (see `publish`). */
  private corked: number[] = [];
  private uncorkScheduled = false;
  /** False from a disconnect until the reconnect: publishes wait in `pending`. */
  private connected = true;
  private readonly status: AsyncIterable<Status>;

  constructor(
    private readonly nc: NatsConnection,
    options: PublisherOptions = {},
  ) {
    this.window = options.window ?? DEFAULT_PUBLISH_WINDOW;
    this.ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.prefix = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (_err, msg) => this.onReply(msg) });
    this.retryTimer = setInterval(() => this.resendExpired(), Math.max(100, this.ackTimeoutMs / 4));
    this.retryTimer.unref();
    this.status = nc.status();
    // The status iterator ends only when the connection closes, and publishing with it.
    this.followConnection().catch(() => undefined);
  }

  /** Publishes outstanding. */
  get outstanding(): number {
    return this.pending.size;
  }

  /** A number that `flushed(mark)` waits for: everything published before this call. */
  mark(): number {
    return this.next;
  }

  /** Queues one message; never blocks. Callers keep `outstanding` under `window` with `capacity()`. */
  publish(subject: string, data: Uint8Array, headers: MsgHdrs, msgId: string): void {
    if (this.failure) throw this.failure;
    headers.set(MSG_ID_HEADER, msgId);
    const id = this.next++;
    this.pending.set(id, { subject, data, headers, sentAt: Date.now(), attempts: 1 });
    // nats.js writes to the socket at the end of each microtask burst, and a
    // consumer's async iterator yields one record per microtask: handing the
    // publishes over once per event-loop turn makes one socket write of many
    // messages instead of one per message (a quarter of the CPU otherwise).
    this.corked.push(id);
    if (!this.uncorkScheduled) {
      this.uncorkScheduled = true;
      setImmediate(this.uncork);
    }
  }

  private readonly uncork = (): void => {
    this.uncorkScheduled = false;
    const ids = this.corked;
    this.corked = [];
    if (!this.connected || this.nc.isClosed()) return;
    for (const id of ids) {
      const entry = this.pending.get(id);
      if (entry) this.nc.publish(entry.subject, entry.data, { reply: this.prefix + id, headers: entry.headers });
    }
  };

  /** Resolves when fewer than `window / 2` publishes are outstanding. */
  capacity(): Promise<void> {
    if (this.pending.size < this.window) return Promise.resolve();
    const oldest = this.oldest();
    return this.flushed(oldest + Math.ceil(this.window / 2));
  }

  /** Resolves once every publish numbered below `mark` has been acknowledged; rejects if the publisher failed. */
  flushed(mark: number = this.next): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.oldest() >= mark) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ below: mark, resolve, reject }));
  }

  /** Stops listening for PubAcks; outstanding publishes are abandoned (their msg ids make a later replay safe). */
  close(): void {
    clearInterval(this.retryTimer);
    stopIterator(this.status);
    this.sub.unsubscribe();
    this.fail(millraceError(ErrorCodes.NODE_STOPPED, 'publisher closed'));
  }

  /**
   * The oldest unacknowledged publish (`next` if none). Ids below `low` are
   * all acknowledged, so the scan is amortised O(1); asking the Map for its
   * first key instead walks every deleted slot V8 has not compacted yet,
   * which at thousands of PubAcks a second was 5 % of a node's CPU.
   */
  private oldest(): number {
    while (this.low < this.next && !this.pending.has(this.low)) this.low++;
    return this.low;
  }

  private onReply(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length));
    const entry = this.pending.get(id);
    if (!entry) return; // a late PubAck of a resent message
    const status = msg.headers?.code ?? 0;
    if (status === 503) {
      return this.fail(
        millraceError(ErrorCodes.PUBLISH_REJECTED, `no JetStream stream captures subject "${entry.subject}"`, {
          details: { subject: entry.subject },
        }),
      );
    }
    if (status >= 400 || msg.data.length === 0) {
      // Not stored, while later publishes may be: a resend would land behind them. Fail instead; the run restarts from its checkpoint.
      return this.fail(
        millraceError(ErrorCodes.PUBLISH_REJECTED, `a publish to "${entry.subject}" got no PubAck but status ${status} ${msg.headers?.description ?? ''}`.trim(), {
          disposition: 'retryable',
          details: { subject: entry.subject, status },
        }),
      );
    }
    const text = decoder.decode(msg.data);
    if (text.includes('"error"')) {
      const { error } = JSON.parse(text) as { error: { code: number; description: string } };
      return this.fail(
        millraceError(ErrorCodes.PUBLISH_REJECTED, `JetStream rejected a publish to "${entry.subject}": ${error.description}`, {
          details: { subject: entry.subject, jsCode: error.code },
        }),
      );
    }
    this.pending.delete(id);
    if (this.waiters.length > 0) this.wake();
  }

  private wake(): void {
    const oldest = this.oldest();
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (oldest >= w.below) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private async followConnection(): Promise<void> {
    for await (const { type } of this.status) {
      if (type === Events.Disconnect) this.connected = false;
      else if (type === Events.Reconnect) this.resendAllInOrder();
    }
  }

  /**
   * After a reconnect: everything unacknowledged, oldest first, before any
   * new publish. Held publishes are part of it, so nothing stays corked.
   */
  private resendAllInOrder(): void {
    this.connected = true;
    this.corked = [];
    if (this.failure || this.nc.isClosed()) return;
    const now = Date.now();
    for (const [id, entry] of this.pending) {
      entry.sentAt = now;
      this.nc.publish(entry.subject, entry.data, { reply: this.prefix + id, headers: entry.headers });
    }
  }

  private resendExpired(): void {
    if (this.failure || !this.connected || this.nc.isClosed()) return;
    const now = Date.now();
    for (const [id, entry] of this.pending) {
      if (now - entry.sentAt < this.ackTimeoutMs) continue;
      if (entry.attempts >= this.maxAttempts) {
        return this.fail(
          millraceError(ErrorCodes.PUBLISH_TIMEOUT, `no PubAck for a publish to "${entry.subject}" after ${entry.attempts} attempts`, {
            disposition: 'retryable',
            details: { subject: entry.subject },
          }),
        );
      }
      entry.attempts++;
      entry.sentAt = now;
      this.nc.publish(entry.subject, entry.data, { reply: this.prefix + id, headers: entry.headers });
    }
  }

  private fail(err: MillraceError): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }
}

/** Ends a `nc.status()` iterator, which also removes it from the connection's listeners. */
function stopIterator(status: AsyncIterable<Status>): void {
  (status as Partial<{ stop(): void }>).stop?.();
}

/** Fresh headers for one record. */
export function recordHeaders(): MsgHdrs {
  return natsHeaders();
}
