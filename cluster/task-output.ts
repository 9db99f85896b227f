/** Adapts the NATS publisher to the engine's TaskOutput port: record headers are built here. */
import type { NatsConnection } from 'nats';
import type { TaskOutput } from '../runtime/task/ports.js';
import { BARRIER_HEADER, EVENT_TIME_HEADER, GENERATION_HEADER, KEY_HEADER, PRODUCER_HEADER } from '../runtime/wire/headers.js';
import { Publisher, recordHeaders } from './transport/publisher.js';

/** Stamped on every record and barrier of an internal stream (decision 003). */
export interface OutputStamp {
  readonly producer: string;
  readonly generation: number;
}

const EMPTY = new Uint8Array(0);

/**
 * @param stamp for an internal stream: who produced the records, in which run
 * @param storedIds for a sink: looks up ids the destination already stored (cluster/transport/stored-ids.ts)
 */
export function natsTaskOutput(nc: NatsConnection, window: number, stamp?: OutputStamp, storedIds?: TaskOutput['storedIds']): TaskOutput {
  const publisher = new Publisher(nc, { window });
  const generation = stamp ? String(stamp.generation) : '';
  return {
    publish(subject, data, key, timestamp, msgId) {
      const h = recordHeaders();
      h.set(KEY_HEADER, key);
      h.set(EVENT_TIME_HEADER, String(timestamp));
      if (stamp) {
        h.set(PRODUCER_HEADER, stamp.producer);
        h.set(GENERATION_HEADER, generation);
      }
      publisher.publish(subject, data, h, msgId);
    },
    barrier(subject, checkpoint, msgId) {
      const h = recordHeaders();
      h.set(BARRIER_HEADER, String(checkpoint));
      if (stamp) {
        h.set(PRODUCER_HEADER, stamp.producer);
        h.set(GENERATION_HEADER, generation);
      }
      publisher.publish(subject, EMPTY, h, msgId);
    },
    get outstanding() {
      return publisher.outstanding;
    },
    window: publisher.window,
    capacity: () => publisher.capacity(),
    mark: () => publisher.mark(),
    flushed: (mark) => publisher.flushed(mark),
    storedIds,
    close: () => publisher.close(),
  };
}
