/**
 * Sources and sinks: where a job reads and writes. A millrace stream is
 * already partitioned by key (docs/wire-format.md); any other JetStream
 * stream is read through a key extractor and repartitioned with `keyBy`.
 */

export type Format = 'json' | 'msgpack';

/** Reads a millrace stream: records arrive keyed and partitioned by key. */
export interface StreamSource<T> {
  readonly kind: 'stream';
  readonly stream: string;
  /** Partitions to create the stream with when it does not exist yet; an existing stream keeps its own. */
  readonly partitions: number | undefined;
  /** phantom */
  readonly __type?: T;
}

/** Reads an existing JetStream stream that millrace does not own. */
export interface JetStreamSource<T> {
  readonly kind: 'jetstream';
  readonly stream: string;
  /**
   * One source partition (one task) per subject filter, each read in order.
   * Empty: one partition reading the whole stream.
   */
  readonly subjects: readonly string[];
  readonly format: Format;
  /** The record key; a record whose extractor throws is skipped and reported. */
  readonly key: (value: T) => string;
  /** Event time of a record; default the time JetStream stored it. */
  readonly timestamp: ((value: T) => number) | undefined;
}

export type Source<T> = StreamSource<T> | JetStreamSource<T>;

/** Writes to a millrace stream, partitioned by record key. */
export interface StreamSink<T> {
  readonly kind: 'stream';
  readonly stream: string;
  readonly partitions: number | undefined;
  readonly __type?: T;
}

/** Writes to any subject a JetStream stream captures, as JSON or msgpack. */
export interface JetStreamSink<T> {
  readonly kind: 'jetstream';
  readonly subject: string | ((value: T, key: string) => string);
  readonly format: Format;
}

export type Sink<T> = StreamSink<T> | JetStreamSink<T>;

const STREAM_NAME = /^[A-Za-z0-9_-]{1,128}$/;

export function assertStreamName(name: string, what: string): void {
  if (!STREAM_NAME.test(name)) {
    throw new TypeError(`${what}: stream name must match ${STREAM_NAME}, got ${JSON.stringify(name)}`);
  }
}

export const source = {
  /** A millrace stream, e.g. one written by `client.produce()` or another job's `sink.stream()`. */
  stream<T>(name: string, options: { partitions?: number } = {}): StreamSource<T> {
    assertStreamName(name, 'source.stream()');
    return { kind: 'stream', stream: name, partitions: options.partitions };
  },
  /** Any JetStream stream, with a key extractor. */
  jetstream<T>(options: {
    stream: string;
    subjects?: readonly string[];
    format?: Format;
    key: (value: T) => string;
    timestamp?: (value: T) => number;
  }): JetStreamSource<T> {
    if (typeof options.key !== 'function') throw new TypeError('source.jetstream(): key must be a function');
    return {
      kind: 'jetstream',
      stream: options.stream,
      subjects: [...(options.subjects ?? [])],
      format: options.format ?? 'json',
      key: options.key,
      timestamp: options.timestamp,
    };
  },
};

export const sink = {
  /** A millrace stream, created with `partitions` (default: the node's defaultPartitions) when missing. */
  stream<T>(name: string, options: { partitions?: number } = {}): StreamSink<T> {
    assertStreamName(name, 'sink.stream()');
    return { kind: 'stream', stream: name, partitions: options.partitions };
  },
  /** Any subject captured by a JetStream stream; the stream must exist. */
  jetstream<T>(options: { subject: string | ((value: T, key: string) => string); format?: Format }): JetStreamSink<T> {
    return { kind: 'jetstream', subject: options.subject, format: options.format ?? 'json' };
  },
};
