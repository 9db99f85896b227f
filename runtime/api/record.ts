/** What flows between operators: a value with the key it is partitioned by and its event time. */
export interface StreamRecord<T> {
  /** The record key (UTF-8). Decides the partition when the record crosses a repartition. */
  readonly key: string;
  readonly value: T;
  /** Event time, milliseconds since the Unix epoch. */
  readonly timestamp: number;
}

/** Where a record came from, for logs and the dead-letter hook. */
export interface SourcePosition {
  readonly stream: string;
  readonly subject: string;
  readonly seq: number;
}
