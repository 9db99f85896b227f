/**
 * The keyed-operator test harness, after Flink's
 * KeyedOneInputStreamOperatorTestHarness and Kafka's TopologyTestDriver: it
 * runs one keyed operator inside the engine's real `Task` — record decoding,
 * the fused chain, keyed state behind its cache, timers, commits, message
 * ids — over in-memory ports, a memory backend and a manual clock. Nothing
 * of the task is reimplemented here.
 *
 * Every observation is a commit point: reading state, listing timers, taking
 * a snapshot and advancing processing time first stop the task gracefully
 * (it commits and acks what it processed) and start a new one from the
 * backend, as a node does after a restart. So a test sees what is durable,
 * and each observation also proves that the operator restores.
 *
 * Advancing time goes through a restart too: a task arms its wake-up with a
 * wall-clock `setTimeout` computed from `now()` when it starts or a timer is
 * added, so moving an injected clock does not move an armed wake-up. A task
 * started after the clock moved arms it with a delay of 0 for every timer
 * already due, and fires them in its own loop.
 */
import pino, { type Logger } from 'pino';
import { ErrorCodes, millraceError } from '../../errors.js';
import type { KeyedDefinition } from '../api/keyed.js';
import { job as defineJob } from '../api/pipeline.js';
import { sink, source } from '../api/connectors.js';
import type { StreamRecord } from '../api/record.js';
import type { StateSpecs } from '../api/state.js';
import { compileJob, type StagePlan } from '../plan/compile.js';
import type { StateBackend } from '../state/backend.js';
import { decodeTimerKey, timerPrefix } from '../state/keys.js';
import { readTaskPosition } from '../state/task-position.js';
import { createMemoryBackend } from '../state/memory-backend.js';
import type { DeadLetter } from '../task/ports.js';
import { Task } from '../task/task.js';
import { decodeMsgpack, encodeMsgpack } from '../wire/codec.js';
import { EVENT_TIME_HEADER, KEY_HEADER } from '../wire/headers.js';
import { partitionSubject } from '../wire/subjects.js';
import { resolveHarnessOptions, type KeyedHarnessOptions, type ResolvedHarnessOptions } from './harness-options.js';
import { manualClock, type ManualClock } from './manual-clock.js';
import { memoryInput, type MemoryInput, type MemoryMessageInit } from './memory-input.js';
import { memoryOutput, type MemoryOutput } from './memory-output.js';
import { readCommittedState, type StateValue } from './state-reader.js';
import { captureEntries, restoreEntries, type HarnessSnapshot } from './snapshot.js';

/** The millrace streams of the harness's one-stage job. */
export const HARNESS_INPUT_STREAM = 'harness-input';
export const HARNESS_OUTPUT_STREAM = 'harness-output';

/** A record the operator emitted, as the next stage would read it, with where it went. */
export interface EmittedRecord<T> extends StreamRecord<T> {
  /** `mr.harness-output.<partition of key>`. */
  readonly subject: string;
  /** Its `Nats-Msg-Id`: `<job>/s0/<partition>:<inputSeq>:<i>`, or `<job>/s0/<partition>:t:<ts>:<key>:<i>` from a timer. */
  readonly msgId: string;
}

/** The key and event time of a record given to `process()`. */
export interface RecordMeta {
  readonly key: string;
  /** Event time, ms since the epoch. @default the harness's processing time */
  readonly timestamp?: number;
}

/** A processing-time timer the operator has set and that has not fired. */
export interface PendingTimer {
  readonly ts: number;
  readonly key: string;
}

/** Starts a harness around `definition`: a running task, ready for `process()`. */
export async function keyedHarness<In, Out, S extends StateSpecs>(
  definition: KeyedDefinition<In, Out, S>,
  options: KeyedHarnessOptions = {},
): Promise<KeyedHarness<In, Out, S>> {
  if (definition?.kind !== 'keyed') throw new TypeError('keyedHarness(): definition must be made with keyed()');
  return KeyedHarness.start(definition, resolveHarnessOptions(definition.name, options));
}

export class KeyedHarness<In, Out, S extends StateSpecs> {
  /** Every record the task skipped (undecodable, or the operator threw), in order. */
  readonly deadLetters: DeadLetter[] = [];
  private readonly clock: ManualClock;
  private readonly input: MemoryInput;
  private readonly outputPort: MemoryOutput = memoryOutput();
  private readonly logger: Logger;
  private readonly emitted: EmittedRecord<Out>[] = [];
  /** Timer outputs not yet returned by `advanceProcessingTime()`. */
  private timerOutputs: EmittedRecord<Out>[] = [];
  private decoded = 0;
  private task!: Task;
  /** Nothing was processed or fired since the task last committed everything. */
  private committed = true;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly definition: KeyedDefinition<In, Out, S>,
    private readonly options: ResolvedHarnessOptions,
    private readonly backend: StateBackend,
    private readonly ownsBackend: boolean,
    private readonly stage: StagePlan,
    firstSeq: number,
  ) {
    this.clock = manualClock(options.startTime);
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.input = memoryInput({ firstSeq, clock: this.clock.now, subject: partitionSubject(HARNESS_INPUT_STREAM, options.partition) });
  }

  /** @internal use keyedHarness() */
  static async start<In, Out, S extends StateSpecs>(
    definition: KeyedDefinition<In, Out, S>,
    options: ResolvedHarnessOptions,
  ): Promise<KeyedHarness<In, Out, S>> {
    const plan = compileJob(
      defineJob(options.job)
        .from(source.stream<In>(HARNESS_INPUT_STREAM))
        .process(definition)
        .to(sink.stream<Out>(HARNESS_OUTPUT_STREAM, { partitions: options.outputPartitions })),
    );
    const stage = plan.stages[0]!;
    const backend = options.backend ?? createMemoryBackend();
    try {
      if (options.restoreFrom) await restoreEntries(backend, options.restoreFrom);
      const { position } = readTaskPosition(backend, options.job, stage.id, options.partition);
      const harness = new KeyedHarness(definition, options, backend, !options.backend, stage, position + 1);
      harness.task = await harness.startTask();
      return harness;
    } catch (err) {
      if (!options.backend) await backend.close();
      throw err;
    }
  }

  /** The harness's processing time, ms. */
  get now(): number {
    return this.clock.now();
  }

  /** Every record emitted so far, from records and timers, in publish order. */
  get output(): readonly EmittedRecord<Out>[] {
    this.absorb();
    return [...this.emitted];
  }

  /** Runs one record through the operator; resolves with what it emitted. */
  process(value: In, meta: RecordMeta): Promise<EmittedRecord<Out>[]> {
    return this.serial(async () => {
      const message = this.message(value, meta);
      this.committed = false;
      const seq = this.input.push(message);
      await this.settle();
      return this.absorb().filter((r) => this.inputSeqOf(r) === seq);
    });
  }

  /** Runs records through the operator in one go (commits pipelined as in production); resolves with what they emitted. */
  processAll(records: Iterable<{ readonly value: In } & RecordMeta>): Promise<EmittedRecord<Out>[]> {
    return this.serial(async () => {
      const messages = Array.from(records, (r) => this.message(r.value, r)); // all checked before any is pushed
      if (messages.length === 0) return [];
      this.committed = false;
      const seqs = messages.map((m) => this.input.push(m));
      const first = seqs[0]!;
      await this.settle();
      return this.absorb().filter((r) => (this.inputSeqOf(r) ?? 0) >= first);
    });
  }

  /** Moves processing time `ms` forward and fires every timer now due; resolves with what the timers emitted. */
  advanceProcessingTime(ms: number): Promise<EmittedRecord<Out>[]> {
    return this.serial(async () => {
      this.clock.advance(ms);
      await this.restart();
      await new Promise((resolve) => setTimeout(resolve, 0)); // after the wake-up the new task armed with delay 0
      this.committed = false;
      if (this.task.state !== 'running') await this.failure();
      this.absorb();
      const fired = this.timerOutputs;
      this.timerOutputs = [];
      return fired;
    });
  }

  /** The committed value of state `name` of `key`, as a handler would read it (defaults applied). */
  state<N extends keyof S & string>(key: string, name: N): Promise<StateValue<S[N]>> {
    return this.serial(async () => {
      if (typeof key !== 'string') throw new TypeError(`state(): key must be a string, got ${typeof key}`);
      const spec = Object.hasOwn(this.definition.state, name) ? this.definition.state[name] : undefined;
      if (!spec) {
        const declared = Object.keys(this.definition.state).join(', ') || 'none';
        throw new TypeError(`state(): operator "${this.definition.name}" declares no state "${name}" (it declares: ${declared})`);
      }
      await this.commitPoint();
      return readCommittedState(this.backend, this.place(), name, spec, key) as StateValue<S[N]>;
    });
  }

  /** Timers set and not fired, by time then key. */
  timers(): Promise<PendingTimer[]> {
    return this.serial(async () => {
      await this.commitPoint();
      const timers: PendingTimer[] = [];
      for await (const [k] of this.backend.entries(timerPrefix(this.options.job, this.definition.name, this.options.partition))) {
        const { ts, key } = decodeTimerKey(k);
        timers.push({ ts, key });
      }
      return timers;
    });
  }

  /** The committed state, timers, input position and clock; `keyedHarness(def, { restoreFrom })` starts from it. */
  snapshot(): Promise<HarnessSnapshot> {
    return this.serial(async () => {
      await this.commitPoint();
      const entries = await captureEntries(this.backend, { ...this.place(), stage: this.stage.id });
      return Object.freeze({ ...this.place(), processingTime: this.clock.now(), entries: Object.freeze(entries) });
    });
  }

  /** Stops the task (it commits what it processed) and releases what the harness opened. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.queue.then(() => undefined);
    this.closed = true;
    const closing = this.queue.then(async () => {
      try {
        await this.task.stop();
      } finally {
        this.outputPort.close();
        if (this.ownsBackend) await this.backend.close();
      }
    });
    this.queue = closing.catch(() => undefined);
    return closing;
  }

  private place() {
    return { job: this.options.job, operator: this.definition.name, partition: this.options.partition };
  }

  /** The input message of a record, as a millrace stream carries it. */
  private message(value: In, meta: RecordMeta): MemoryMessageInit {
    if (typeof meta?.key !== 'string') throw new TypeError(`process(): key must be a string, got ${typeof meta?.key}`);
    const timestamp = meta.timestamp ?? this.clock.now();
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
      throw new TypeError(`process(): timestamp must be an integer ≥ 0 (ms), got ${timestamp}`);
    }
    return { data: encodeMsgpack(value), headers: { [KEY_HEADER]: meta.key, [EVENT_TIME_HEADER]: String(timestamp) } };
  }

  /** Waits until the task has taken every record pushed; rejects if it failed. */
  private async settle(): Promise<void> {
    const state = await Promise.race([this.input.idle(), this.task.done.then(() => 'stopped' as const)]);
    if (state === 'stopped') await this.failure();
  }

  /** Rejects with why the task is not running. */
  private async failure(): Promise<never> {
    await this.task.done;
    throw millraceError(ErrorCodes.NODE_STOPPED, `the harness's task ${this.task.id} stopped unexpectedly`);
  }

  private async commitPoint(): Promise<void> {
    if (!this.committed) await this.restart();
  }

  /** Stops the task gracefully (commit + ack) and starts a new one from the backend. */
  private async restart(): Promise<void> {
    await this.task.stop();
    await this.task.done; // stop() swallows a failure; surface it
    this.absorb();
    this.task = await this.startTask();
    this.committed = true;
  }

  private async startTask(): Promise<Task> {
    const o = this.options;
    const task = new Task({
      job: o.job,
      stage: this.stage,
      partition: o.partition,
      inputStream: HARNESS_INPUT_STREAM,
      outputPartitions: o.outputPartitions,
      backend: this.backend,
      openInput: this.input.open,
      output: this.outputPort,
      logger: this.logger,
      deadLetter: (letter) => this.deadLetters.push(letter),
      commitEveryRecords: o.commitEveryRecords,
      stateCacheEntries: o.stateCacheEntries,
      now: this.clock.now,
    });
    await task.start();
    task.done.catch(() => undefined); // observed by settle() and restart()
    return task;
  }

  /** The input sequence a record output came from (its msg id is `<task>:<seq>:<i>`); undefined for a timer's. */
  private inputSeqOf(record: EmittedRecord<Out>): number | undefined {
    const rest = record.msgId.slice(this.task.id.length + 1);
    const seq = Number(rest.slice(0, rest.indexOf(':')));
    return Number.isSafeInteger(seq) ? seq : undefined;
  }

  /** Decodes publishes not seen yet; returns them. */
  private absorb(): EmittedRecord<Out>[] {
    const fresh: EmittedRecord<Out>[] = [];
    const published = this.outputPort.published;
    const timerOrigin = `${this.task.id}:t:`;
    for (; this.decoded < published.length; this.decoded++) {
      const m = published[this.decoded]!;
      const record: EmittedRecord<Out> = {
        key: m.key,
        value: decodeMsgpack(m.data) as Out,
        timestamp: m.timestamp,
        subject: m.subject,
        msgId: m.msgId,
      };
      this.emitted.push(record);
      fresh.push(record);
      if (m.msgId.startsWith(timerOrigin)) this.timerOutputs.push(record);
    }
    return fresh;
  }

  /** Runs `op` after every call made before it; a call made after close() rejects. */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(millraceError(ErrorCodes.NODE_STOPPED, 'the harness is closed'));
    const run = this.queue.then(op);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
