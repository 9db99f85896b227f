/**
 * A steady trickle of events into a millrace stream, kept up while a node is
 * killed and restarted, so the restarted node has records to replay and new
 * ones to process. Trickle event j (id `firstId + j`) counts key
 * `k<(j * STRIDE) mod keys>` once more: spread over the existing keys, so
 * each is a read of restored state.
 */
import { headers, type NatsConnection } from 'nats';
import { pack } from 'msgpackr';
import { EVENT_TIME_HEADER, KEY_HEADER, MSG_ID_HEADER } from '../runtime/wire/headers.js';
import { partitionOf } from '../runtime/wire/partitioner.js';
import { keyEvent } from './events.js';
import { RawPublisher } from './raw-publisher.js';
import { partitionSubjects } from './streams.js';

/** A prime: consecutive trickle events hit keys far apart (and distinct for fewer than `keys` events). */
const STRIDE = 7919;
const TICK_MS = 20;
const WINDOW = 1024;

export interface TrickleOptions {
  stream: string;
  partitions: number;
  /** Keys `k0` .. `k<keys-1>` exist. */
  keys: number;
  /** Id of the first trickle event (above every id already in the stream). */
  firstId: number;
  perSecond: number;
}

/** The key trickle event `j` counts. */
export function trickleKey(j: number, keys: number): string {
  return `k${(j * STRIDE) % keys}`;
}

export class Trickle {
  /** Events published so far. */
  published = 0;
  private readonly pub: RawPublisher;
  private readonly subjects: string[];
  private readonly timer: NodeJS.Timeout;
  private readonly started = performance.now();

  constructor(
    nc: NatsConnection,
    private readonly o: TrickleOptions,
  ) {
    this.pub = new RawPublisher(nc, WINDOW, () => {});
    this.subjects = partitionSubjects(o.stream, o.partitions);
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Stops publishing; resolves with the count once every event is acknowledged. */
  async stop(): Promise<number> {
    clearInterval(this.timer);
    await this.pub.drain();
    return this.published;
  }

  close(): void {
    clearInterval(this.timer);
    this.pub.close();
  }

  /** Catches up with the rate: as many events as should be out by now (none while the stream lags a whole window). */
  private tick(): void {
    const due = Math.floor(((performance.now() - this.started) / 1000) * this.o.perSecond);
    while (this.published < due && this.pub.outstanding < WINDOW && !this.pub.failure) {
      const j = this.published++;
      const e = keyEvent(this.o.firstId + j, trickleKey(j, this.o.keys));
      const h = headers();
      h.set(KEY_HEADER, e.userId);
      h.set(EVENT_TIME_HEADER, String(e.ts));
      h.set(MSG_ID_HEADER, `bench:${e.id}`);
      this.pub.publish(this.subjects[partitionOf(e.userId, this.o.partitions)]!, pack(e), h, e.id);
    }
  }
}
