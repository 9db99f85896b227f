/**
 * The producer client: writes records into millrace streams and manages
 * them. `produce` does not wait for its PubAck before the next call may
 * publish: thousands stay outstanding (bounded by `publishWindow`), and each
 * returned promise settles when JetStream has stored that record and every
 * record produced before it.
 */
import { nuid, type JetStreamManager, type NatsConnection } from 'nats';
import { ErrorCodes, millraceError } from '../errors.js';
import { encodeMsgpack } from '../runtime/wire/codec.js';
import { EVENT_TIME_HEADER, KEY_HEADER } from '../runtime/wire/headers.js';
import { partitionOf } from '../runtime/wire/partitioner.js';
import { partitionSubject } from '../runtime/wire/subjects.js';
import { connectNats } from './transport/connection.js';
import { DEFAULT_PUBLISH_WINDOW, Publisher, recordHeaders } from './transport/publisher.js';
import { createStream, deleteStream, describeStream, type CreateStreamOptions, type StreamDescription } from './transport/streams.js';

export interface ClientOptions {
  /** NATS URL(s). */
  servers: string | readonly string[];
  /** Connection name. @default 'millrace-client' */
  name?: string;
  /** Records awaiting their PubAck at most; `produce` waits for room beyond it. @default 8192 */
  publishWindow?: number;
}

export interface ProduceOptions {
  /** Event time in ms since the epoch. @default Date.now() */
  timestamp?: number;
  /** De-duplication id: JetStream drops a second record with the same id within its duplicate window. @default `<client id>:<counter>` */
  msgId?: string;
}

export interface StreamAdmin {
  create(name: string, options?: CreateStreamOptions): Promise<StreamDescription>;
  describe(name: string): Promise<StreamDescription | undefined>;
  delete(name: string): Promise<boolean>;
}

export interface MillraceClient {
  /** This client's id, the prefix of its default message ids. */
  readonly id: string;
  readonly streams: StreamAdmin;
  /** Publishes `value` under `key` to the partition of `key` in stream `stream`. */
  produce<T>(stream: string, key: string, value: T, options?: ProduceOptions): Promise<void>;
  /** Resolves when every record produced so far is stored. */
  flush(): Promise<void>;
  /** Flushes, then closes the connection. */
  close(): Promise<void>;
  /** The underlying NATS connection, for what millrace does not wrap. */
  readonly nats: NatsConnection;
}

export async function connect(options: ClientOptions): Promise<MillraceClient> {
  const servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers];
  const nc = await connectNats({ servers, name: options.name ?? 'millrace-client' });
  const jsm: JetStreamManager = await nc.jetstreamManager();
  const publisher = new Publisher(nc, { window: options.publishWindow ?? DEFAULT_PUBLISH_WINDOW });
  const partitions = new Map<string, Promise<number>>();
  const id = nuid.next();
  let counter = 0;

  const partitionsOf = (stream: string): Promise<number> => {
    let p = partitions.get(stream);
    if (!p) {
      p = describeStream(jsm, stream).then((d) => {
        if (d) return d.partitions;
        partitions.delete(stream);
        throw millraceError(ErrorCodes.STREAM_NOT_FOUND, `stream "${stream}" does not exist; create it with client.streams.create()`, {
          details: { stream },
        });
      });
      partitions.set(stream, p);
    }
    return p;
  };

  const streams: StreamAdmin = {
    create: (name, opts) => createStream(jsm, name, opts),
    describe: (name) => describeStream(jsm, name),
    delete: async (name) => {
      partitions.delete(name);
      return deleteStream(jsm, name);
    },
  };

  return {
    id,
    streams,
    nats: nc,
    async produce(stream, key, value, opts = {}) {
      if (typeof key !== 'string') throw new TypeError(`produce(): key must be a string, got ${typeof key}`);
      const count = await partitionsOf(stream);
      if (publisher.outstanding >= publisher.window) await publisher.capacity();
      const headers = recordHeaders();
      headers.set(KEY_HEADER, key);
      headers.set(EVENT_TIME_HEADER, String(opts.timestamp ?? Date.now()));
      const mark = publisher.mark();
      publisher.publish(partitionSubject(stream, partitionOf(key, count)), encodeMsgpack(value), headers, opts.msgId ?? `${id}:${counter++}`);
      return publisher.flushed(mark + 1);
    },
    flush: () => publisher.flushed(),
    async close() {
      try {
        await publisher.flushed();
      } finally {
        publisher.close();
        await nc.drain();
      }
    },
  };
}
