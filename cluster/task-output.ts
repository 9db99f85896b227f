/** Adapts the NATS publisher to the engine's TaskOutput port: record headers are built here. */
import type { NatsConnection } from 'nats';
import type { TaskOutput } from '../runtime/task/ports.js';
import { EVENT_TIME_HEADER, KEY_HEADER } from '../runtime/wire/headers.js';
import { Publisher, recordHeaders } from './transport/publisher.js';

export function natsTaskOutput(nc: NatsConnection, window: number): TaskOutput {
  const publisher = new Publisher(nc, { window });
  return {
    publish(subject, data, key, timestamp, msgId) {
      const h = recordHeaders();
      h.set(KEY_HEADER, key);
      h.set(EVENT_TIME_HEADER, String(timestamp));
      publisher.publish(subject, data, h, msgId);
    },
    get outstanding() {
      return publisher.outstanding;
    },
    window: publisher.window,
    capacity: () => publisher.capacity(),
    mark: () => publisher.mark(),
    flushed: (mark) => publisher.flushed(mark),
    close: () => publisher.close(),
  };
}
