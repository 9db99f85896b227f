/**
 * The pipeline DSL: `job(name).from(source)...to(sink)` builds an immutable
 * description of a job. The engine compiles it into stages (runtime/plan).
 */
import type { KeyedDefinition } from './keyed.js';
import type { Sink, Source, StreamSource } from './connectors.js';
import type { StateSpecs } from './state.js';
import type { StreamRecord } from './record.js';

export type Operation =
  | { readonly kind: 'filter'; readonly name: string; readonly fn: (value: any, record: StreamRecord<any>) => boolean }
  | { readonly kind: 'map'; readonly name: string; readonly fn: (value: any, record: StreamRecord<any>) => any }
  | { readonly kind: 'flatMap'; readonly name: string; readonly fn: (value: any, record: StreamRecord<any>) => Iterable<any> }
  | { readonly kind: 'keyBy'; readonly name: string; readonly fn: (value: any) => string; readonly partitions: number | undefined }
  | { readonly kind: 'process'; readonly name: string; readonly definition: KeyedDefinition<any, any, any> };

/** A job as the user declared it. */
/** How a job runs in a cluster. */
export interface JobOptions {
  /**
   * Standby replicas per task (Kafka Streams' `num.standby.replicas`): other
   * nodes keep a warm copy of each task's state by following its committed
   * snapshots, and a task whose node dies restarts on one of them, where
   * only the last deltas are left to apply. Costs each standby node the
   * snapshot downloads and the LevelDB writes of the tasks it follows.
   * @default 0
   */
  readonly standbyReplicas?: number;
}

export interface JobDefinition {
  readonly kind: 'job';
  readonly name: string;
  /** @default {} */
  readonly options?: JobOptions;
  readonly source: Source<unknown>;
  readonly operations: readonly Operation[];
  readonly sink: Sink<unknown>;
}

const JOB_NAME = /^[A-Za-z0-9_-]{1,64}$/;

class Builder {
  constructor(
    protected readonly jobName: string,
    protected readonly src: Source<unknown>,
    protected readonly ops: readonly Operation[],
    protected readonly jobOptions: JobOptions,
  ) {}

  protected named(kind: string, name: string | undefined): string {
    return name ?? `${kind}-${this.ops.length + 1}`;
  }
}

/** A stream of records not (yet) partitioned by their key. */
export class Stream<T> extends Builder {
  /** Keeps records for which `predicate` is true. */
  filter(predicate: (value: T, record: StreamRecord<T>) => boolean, name?: string): this {
    return this.with({ kind: 'filter', name: this.named('filter', name), fn: predicate });
  }

  /** Replaces each value; key and timestamp stay. */
  map<U>(fn: (value: T, record: StreamRecord<T>) => U, name?: string): Stream<U> {
    return this.with({ kind: 'map', name: this.named('map', name), fn }) as unknown as Stream<U>;
  }

  /** Replaces each value with zero or more values. */
  flatMap<U>(fn: (value: T, record: StreamRecord<T>) => Iterable<U>, name?: string): Stream<U> {
    return this.with({ kind: 'flatMap', name: this.named('flatMap', name), fn }) as unknown as Stream<U>;
  }

  /** Re-keys records and repartitions them through an internal stream. */
  keyBy(fn: (value: T) => string, options: { partitions?: number; name?: string } = {}): KeyedStream<T> {
    const op: Operation = { kind: 'keyBy', name: this.named('keyBy', options.name), fn, partitions: options.partitions };
    return new KeyedStream<T>(this.jobName, this.src, [...this.ops, op], this.jobOptions);
  }

  /** Ends the job at `sink`. */
  to(sink: Sink<T>): JobDefinition {
    return { kind: 'job', name: this.jobName, options: this.jobOptions, source: this.src, operations: this.ops, sink: sink as Sink<unknown> };
  }

  protected with(op: Operation): this {
    const Ctor = this.constructor as new (j: string, s: Source<unknown>, o: readonly Operation[], options: JobOptions) => this;
    return new Ctor(this.jobName, this.src, [...this.ops, op], this.jobOptions);
  }
}

/** A stream partitioned by record key: keyed actors may process it. */
export class KeyedStream<T> extends Stream<T> {
  override map<U>(fn: (value: T, record: StreamRecord<T>) => U, name?: string): KeyedStream<U> {
    return super.map(fn, name) as unknown as KeyedStream<U>;
  }

  override flatMap<U>(fn: (value: T, record: StreamRecord<T>) => Iterable<U>, name?: string): KeyedStream<U> {
    return super.flatMap(fn, name) as unknown as KeyedStream<U>;
  }

  /** Runs a keyed actor per key; what it emits stays partitioned by key unless it emits with another key. */
  process<Out, S extends StateSpecs>(definition: KeyedDefinition<T, Out, S>): KeyedStream<Out> {
    if (this.ops.some((op) => op.kind === 'process' && op.name === definition.name)) {
      throw new TypeError(`process(): operator name "${definition.name}" is used twice in job "${this.jobName}"`);
    }
    return this.with({ kind: 'process', name: definition.name, definition }) as unknown as KeyedStream<Out>;
  }
}

export interface JobBuilder {
  from<T>(source: StreamSource<T>): KeyedStream<T>;
  from<T>(source: Source<T>): Stream<T>;
}

/** Starts a job definition. The name identifies its state and consumers: keep it stable. */
export function job(name: string, options: JobOptions = {}): JobBuilder {
  if (!JOB_NAME.test(name)) throw new TypeError(`job(): name must match ${JOB_NAME}, got ${JSON.stringify(name)}`);
  const standby = options.standbyReplicas ?? 0;
  if (!Number.isInteger(standby) || standby < 0 || standby > 4) {
    throw new TypeError(`job(): options.standbyReplicas must be an integer from 0 to 4, got ${JSON.stringify(options.standbyReplicas)}`);
  }
  return {
    from<T>(source: Source<T>): any {
      const src = source as Source<unknown>;
      return source.kind === 'stream' ? new KeyedStream<T>(name, src, [], options) : new Stream<T>(name, src, [], options);
    },
  };
}

export function isJobDefinition(value: unknown): value is JobDefinition {
  return typeof value === 'object' && value !== null && (value as JobDefinition).kind === 'job';
}
