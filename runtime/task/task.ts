/**
 * A task: one stage of a job over one partition, a single-threaded actor
 * host. It reads its partition in order, runs the fused chain synchronously
 * per record, publishes outputs without waiting, and commits:
 *
 *   every `commitEveryRecords` records or `commitIntervalMs`, it seals the
 *   write-set of its keyed operators (state and timers) with its input
 *   position; once every output published so far is acknowledged by
 *   JetStream, that batch goes to the state backend atomically, and only
 *   then is the input acknowledged (ack-all up to the position).
 *
 * So a record's input is acked only after the state change it caused is in
 * the store and its outputs are in JetStream; after a crash the task resumes
 * from the committed position and re-emits under the same message ids.
 * Commits are pipelined: processing goes on while the previous one lands.
 */
import type { Logger } from 'pino';
import { isMillraceError, type MillraceError } from '../../errors.js';
import type { KeyedDefinition } from '../api/keyed.js';
import type { StagePlan } from '../plan/compile.js';
import type { BackendWrite, StateBackend } from '../state/backend.js';
import { KeyedStore } from '../state/keyed-store.js';
import { decodeTimerKey, keyspace, positionKey } from '../state/keys.js';
import { TimerQueue, type Timer } from '../state/timer-queue.js';
import { decodeMsgpack, encodeMsgpack } from '../wire/codec.js';
import { buildChain, type Emit } from './chain.js';
import { KeyedOperator } from './keyed-operator.js';
import type { DeadLetterHandler, InputFactory, InputMessage, TaskInput, TaskOutput } from './ports.js';
import { recordDecoder, type DecodedRecord, type RecordDecoder } from './record-decoder.js';
import { router } from './router.js';

export interface TaskOptions {
  readonly job: string;
  readonly stage: StagePlan;
  readonly partition: number;
  /** Name of the input stream, for logs and dead letters. */
  readonly inputStream: string;
  /** Partition count of the output stream (ignored for JetStream sinks). */
  readonly outputPartitions: number;
  readonly backend: StateBackend;
  readonly openInput: InputFactory;
  readonly output: TaskOutput;
  readonly logger: Logger;
  /** Gets every skipped record. @default log only */
  readonly deadLetter?: DeadLetterHandler;
  /** @default 5000 */
  readonly commitEveryRecords?: number;
  /** @default 100 */
  readonly commitIntervalMs?: number;
  /** @default 200000 */
  readonly stateCacheEntries?: number;
  /** The wall clock for processing-time timers. @default Date.now */
  readonly now?: () => number;
}

export type TaskState = 'created' | 'restoring' | 'running' | 'stopping' | 'stopped' | 'failed';

/** Commits allowed in flight before the loop waits for the oldest. */
const MAX_COMMITS_IN_FLIGHT = 2;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class Task {
  readonly id: string;
  state: TaskState = 'created';
  /** Records processed since start (skipped ones included). */
  processed = 0;
  skipped = 0;
  /** The highest input sequence whose effects are in the store. */
  committedSeq = 0;

  private readonly log: Logger;
  private readonly operators: KeyedOperator[] = [];
  private readonly chain: Emit;
  private readonly decode: RecordDecoder;
  private readonly positionKey: Uint8Array;
  private readonly now: () => number;
  private readonly commitEvery: number;
  private readonly commitIntervalMs: number;
  private input: TaskInput | undefined;
  private position = 0;
  private lastMsg: InputMessage | undefined;
  private uncommitted = 0;
  private commitChain: Promise<void> = Promise.resolve();
  private commitsInFlight = 0;
  private commitTimer: NodeJS.Timeout | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private failure: MillraceError | Error | undefined;
  /** Prefix of the message ids of what the current record or timer emits, and the next index. */
  private origin = '';
  private outIndex = 0;
  private loop: Promise<void> | undefined;
  /** Reused for every record: decoding allocates no holder object. */
  private readonly scratch: DecodedRecord = { value: undefined, key: '', timestamp: 0 };

  constructor(private readonly options: TaskOptions) {
    const { job, stage, partition } = options;
    this.id = `${job}/${stage.id}/${partition}`;
    this.log = options.logger.child({ job, stage: stage.id, task: this.id, partition });
    this.now = options.now ?? Date.now;
    this.commitEvery = options.commitEveryRecords ?? 5000;
    this.commitIntervalMs = options.commitIntervalMs ?? 100;
    this.positionKey = positionKey(job, stage.id, partition);
    this.decode = recordDecoder(stage.input, options.inputStream);
    const publish = (subject: string, data: Uint8Array, key: string, ts: number) =>
      options.output.publish(subject, data, key, ts, this.origin + this.outIndex++);
    const terminal = router(stage.output, options.outputPartitions, publish);
    this.chain = buildChain(stage.operations, terminal, (definition, downstream) => this.hostKeyed(definition, downstream));
  }

  /** Restores the committed position and timers, opens the input and starts processing. */
  async start(): Promise<void> {
    this.state = 'restoring';
    const stored = this.options.backend.getSync(this.positionKey);
    this.position = stored ? (decodeMsgpack(stored) as number) : 0;
    this.committedSeq = this.position;
    for (const op of this.operators) op.timers.restore(await this.storedTimers(op));
    this.input = await this.options.openInput(this.position + 1);
    this.state = 'running';
    this.commitTimer = setInterval(() => this.commitIfDue(), this.commitIntervalMs);
    this.scheduleWake();
    this.loop = this.run();
    this.log.debug({ position: this.position }, 'task started');
  }

  /** Whether everything processed so far is committed (state, position, input ack). */
  get caughtUp(): boolean {
    return this.committedSeq === this.position && this.commitsInFlight === 0;
  }

  /** Settles when the task stops (resolves) or fails (rejects). */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Stops consuming, commits what was processed, acknowledges it. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = 'stopping';
    this.input?.stop();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    const input = this.input!;
    const output = this.options.output;
    try {
      for await (const msg of input.messages) {
        if (this.failure) throw this.failure;
        if (msg.seq > this.position) this.handle(msg);
        if (this.state === 'stopping') break;
        if (output.outstanding >= output.window) await output.capacity();
        if (this.uncommitted >= this.commitEvery) await this.commit();
      }
      if (this.failure) throw this.failure;
      await this.commit();
      await this.commitChain;
      this.state = 'stopped';
      this.log.debug({ position: this.position }, 'task stopped');
    } catch (err) {
      this.state = 'failed';
      this.failure ??= err as Error;
      input.stop();
      throw this.failure;
    } finally {
      clearInterval(this.commitTimer);
      clearTimeout(this.wakeTimer);
    }
  }

  /** Runs one record through the chain; a bad record is reported and skipped. */
  private handle(msg: InputMessage): void {
    this.position = msg.seq;
    this.lastMsg = msg;
    this.uncommitted++;
    this.processed++;
    this.origin = `${this.id}:${msg.seq}:`;
    this.outIndex = 0;
    try {
      const rec = this.scratch;
      this.decode(msg, rec);
      this.chain(rec.value, rec.key, rec.timestamp);
    } catch (err) {
      if (!isSkippable(err)) throw err;
      this.skip(msg, err as MillraceError);
    }
  }

  private skip(msg: InputMessage, err: MillraceError): void {
    this.skipped++;
    const operator = typeof err.details.operator === 'string' ? err.details.operator : undefined;
    this.log.warn(
      { err: { code: err.code, message: err.message }, stream: this.options.inputStream, subject: msg.subject, seq: msg.seq, operator },
      'record skipped',
    );
    this.options.deadLetter?.({
      job: this.options.job,
      task: this.id,
      stream: this.options.inputStream,
      subject: msg.subject,
      seq: msg.seq,
      data: msg.data,
      headers: headerRecord(msg),
      error: err,
      operator,
    });
  }

  private hostKeyed(definition: KeyedDefinition<unknown, unknown, any>, downstream: Emit): Emit {
    const space = keyspace(this.options.job, definition.name, this.options.partition);
    const store = new KeyedStore(this.options.backend, space, this.options.stateCacheEntries ?? 200_000);
    const op = new KeyedOperator(definition, store, new TimerQueue(space), downstream, this.now, () => this.scheduleWake());
    this.operators.push(op);
    return op.process;
  }

  private async storedTimers(op: KeyedOperator): Promise<Timer[]> {
    const prefix = keyspace(this.options.job, op.name, this.options.partition).timerPrefix;
    const timers: Timer[] = [];
    for await (const [key] of this.options.backend.entries(prefix)) {
      const t = decodeTimerKey(key);
      timers.push({ ts: t.ts, key: t.key });
    }
    return timers;
  }

  private commitIfDue(): void {
    if (this.state !== 'running' || this.commitsInFlight > 0) return;
    if (this.uncommitted > 0 || this.operators.some((op) => op.store.dirtyCount > 0 || op.timers.dirtyCount > 0)) {
      void this.commit().catch((err) => this.fail(err));
    }
  }

  /** Seals the write-set now; returns once fewer than MAX_COMMITS_IN_FLIGHT commits are pending. */
  private async commit(): Promise<void> {
    const writes: BackendWrite[] = [];
    const seals = this.operators.map((op) => {
      op.timers.seal(writes);
      return op.store.seal(writes);
    });
    writes.push({ key: this.positionKey, value: encodeMsgpack(this.position) });
    const position = this.position;
    const ackable = this.lastMsg;
    const mark = this.options.output.mark();
    this.lastMsg = undefined;
    this.uncommitted = 0;
    this.commitsInFlight++;
    const landed = this.commitChain.then(async () => {
      await this.options.output.flushed(mark);
      await this.options.backend.write(writes);
      this.operators.forEach((op, i) => op.store.committed(seals[i]!));
      this.committedSeq = position;
      ackable?.ack();
    });
    this.commitChain = landed.finally(() => this.commitsInFlight--);
    this.commitChain.catch((err) => this.fail(err));
    if (this.commitsInFlight >= MAX_COMMITS_IN_FLIGHT) await landed;
  }

  /** Arms one wall-clock wake-up for the earliest timer of any operator. */
  private scheduleWake(): void {
    let earliest = Infinity;
    for (const op of this.operators) earliest = Math.min(earliest, op.timers.earliest() ?? Infinity);
    if (earliest >= this.wakeAt || earliest === Infinity || this.state !== 'running') return;
    clearTimeout(this.wakeTimer);
    this.wakeAt = earliest;
    // setTimeout takes at most 2^31-1 ms; a later timer is re-armed when this wake-up finds nothing due.
    this.wakeTimer = setTimeout(() => this.fireTimers(), Math.min(MAX_TIMEOUT_MS, Math.max(0, earliest - this.now())));
  }

  private fireTimers(): void {
    this.wakeAt = Infinity;
    if (this.state !== 'running') return;
    const now = this.now();
    try {
      for (const op of this.operators) {
        for (let t = op.timers.popDue(now); t; t = op.timers.popDue(now)) {
          this.origin = `${this.id}:t:${t.ts}:${t.key}:`;
          this.outIndex = 0;
          try {
            op.fire(t);
          } catch (err) {
            if (!isSkippable(err)) throw err;
            this.log.warn({ err: { code: (err as MillraceError).code, message: (err as Error).message }, timer: t }, 'timer handler failed');
          }
        }
      }
    } catch (err) {
      return this.fail(err);
    }
    this.scheduleWake();
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err as Error;
    this.log.error({ err }, 'task failed');
    this.input?.stop();
  }
}

/** Errors that concern one record only: the task skips the record and goes on. */
function isSkippable(err: unknown): boolean {
  return isMillraceError(err) && (err.code === 'MR_RECORD_DECODE' || err.code === 'MR_USER_FUNCTION');
}

function headerRecord(msg: InputMessage): Record<string, string> {
  const h = msg.headers as unknown as { keys?: () => string[]; get(k: string): string } | undefined;
  const out: Record<string, string> = {};
  if (h?.keys) for (const k of h.keys()) out[k] = h.get(k);
  return out;
}
