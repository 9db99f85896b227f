/**
 * A task: one stage of a job over one partition, a single-threaded actor
 * host. It reads its partition in order, runs the fused chain synchronously
 * per record and publishes outputs without waiting.
 *
 * Its state changes between checkpoints stay in memory (the keyed stores'
 * write-sets). At checkpoint n (decision 003) it, between two records:
 *
 *   1. seals the write-sets of its operators (state, timers), the sink
 *      outputs it staged and its input position under n;
 *   2. waits until everything it published before is acknowledged, then
 *      publishes barrier n on every partition of an internal output and waits
 *      for that too, so every record lies on the right side of the barrier;
 *   3. resumes processing while the sealed batch lands in the state backend
 *      atomically, and hands it to `checkpointing.sealed` (snapshot upload,
 *      acknowledgement to the coordinator).
 *
 * A source task seals when the coordinator triggers it; a task behind an
 * internal stream seals when barrier n has come from every upstream task
 * (BarrierAligner). Records of an older generation of the job (an aborted
 * run) are ignored; one of a newer generation means this run was rolled back
 * and the task stops.
 *
 * Sink outputs are transactional by default: staged with checkpoint n and
 * published only when the coordinator says n committed, under message ids
 * `<task>:c<n>:<i>`. Without `checkpointing` (a task run alone, as the test
 * harness does) the task seals every `commitEveryRecords` records and when
 * it stops, and publishes sink outputs at once.
 */
import { setImmediate as yieldImmediate } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ErrorCodes, isMillraceError, millraceError, type MillraceError } from '../../errors.js';
import type { KeyedDefinition } from '../api/keyed.js';
import { internalOutputStream, type StagePlan } from '../plan/compile.js';
import type { BackendWrite, StateBackend } from '../state/backend.js';
import { KeyedStore } from '../state/keyed-store.js';
import { decodeKey, decodeTimerKey, keyspace, positionKey, stagedKey, stagedPrefix } from '../state/keys.js';
import { positionWrite, readTaskPosition, resumeAfter, type TaskPosition } from '../state/task-position.js';
import { TimerQueue, type Timer } from '../state/timer-queue.js';
import { UndoLog } from '../state/undo-log.js';
import { BARRIER_HEADER, GENERATION_HEADER, MSG_ID_HEADER, PRODUCER_HEADER } from '../wire/headers.js';
import { partitionSubjects } from '../wire/subjects.js';
import { BarrierAligner } from './barrier-aligner.js';
import { buildChain, type Emit } from './chain.js';
import { KeyedOperator } from './keyed-operator.js';
import type { DeadLetterHandler, InputFactory, InputMessage, TaskInput, TaskOutput } from './ports.js';
import { recordDecoder, type DecodedRecord, type RecordDecoder } from './record-decoder.js';
import { router } from './router.js';
import { StagedOutputs, StagedOutputsWriter } from './staged-outputs.js';

/** How a task takes part in the job's checkpoints. */
export interface TaskCheckpointing {
  /** The job's run counter: stamped on internal outputs; older records are ignored. */
  readonly generation: number;
  /** Tasks whose barriers this task's input carries; empty for a source task (triggered by the coordinator). */
  readonly upstream: readonly string[];
  /** Takes each sealed checkpoint once its batch is in the backend: upload, acknowledge. A rejection fails the task. */
  readonly sealed: (sealed: SealedCheckpoint) => Promise<void>;
  /** `transactional`: sink outputs wait for their checkpoint's commit. `immediate`: published at once (at-least-once). @default 'transactional' */
  readonly sinkMode?: 'transactional' | 'immediate';
  /** Records held during one barrier alignment before the task gives that checkpoint up. @default 100000 */
  readonly maxAlignmentRecords?: number;
  /**
   * A source task processes at most this many records past its last
   * committed checkpoint, then waits for the next commit. This bounds what a
   * checkpoint holds and what the stages behind may have queued before a
   * barrier, so checkpoints complete in bounded time under a backlog.
   * @default 100000
   */
  readonly maxUncommittedRecords?: number;
  /**
   * The restored state comes from a savepoint: the sink outputs staged in it
   * were published when its checkpoint first committed, so they are dropped,
   * not published again. @default false
   */
  readonly discardRestoredStaged?: boolean;
}

export interface SealedCheckpoint {
  readonly task: string;
  readonly checkpoint: number;
  readonly generation: number;
  /** The last input sequence the sealed state covers. */
  readonly position: number;
  /** The input sequence after which a task resumed from this checkpoint reads again: `position`, or earlier when records before it were held. */
  readonly resumeAfter: number;
  /** The batch that went to the backend: what changed since the previous seal (a delta snapshot). */
  readonly writes: readonly BackendWrite[];
  /** Prefixes of every backend key the task owns (for a full snapshot, or a wipe). */
  readonly prefixes: readonly Uint8Array[];
}

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
  /** Checkpoint protocol; without it the task commits on its own (see the module comment). */
  readonly checkpointing?: TaskCheckpointing;
  /** Without `checkpointing`: records between two local commits. @default 5000 */
  readonly commitEveryRecords?: number;
  /** @default 200000 */
  readonly stateCacheEntries?: number;
  /** The wall clock for processing-time timers. @default Date.now */
  readonly now?: () => number;
}

export type TaskState = 'created' | 'restoring' | 'running' | 'stopping' | 'stopped' | 'failed';


const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const DEFAULT_MAX_ALIGNMENT_RECORDS = 100_000;
const DEFAULT_MAX_UNCOMMITTED_RECORDS = 100_000;
/** Staged outputs are looked up from this long before their seal: the sealing node's clock may run ahead of the server's. */
const STAGED_CLOCK_SLACK_MS = 60_000;
/** How long a task processes records before it lets the event loop run. */
const TIME_SLICE_MS = 20;

export class Task {
  readonly id: string;
  state: TaskState = 'created';
  /** Records processed since start (skipped ones included; ignored ones are not). */
  processed = 0;
  skipped = 0;
  /** Records of an older generation passed over. */
  ignored = 0;
  /** The input position of the last seal that reached the backend. */
  committedSeq = 0;
  /** The checkpoint of the last seal that reached the backend (restored one at start). */
  committedCheckpoint = 0;
  /** Date.now() when the first record after start was processed; 0 until then. */
  firstRecordAt = 0;
  /** Date.now() when the last record was processed; 0 until one was. */
  lastRecordAt = 0;
  /** Date.now() when the task sealed the checkpoint it was handed over at (stopAfter); 0 otherwise. */
  handedOverAt = 0;
  /** Every key prefix this task owns in the backend (for a full snapshot, or a wipe). */
  readonly prefixes: readonly Uint8Array[];

  private readonly log: Logger;
  private readonly operators: KeyedOperator[] = [];
  private readonly chain: Emit;
  private readonly decode: RecordDecoder;
  private readonly positionKey: Uint8Array;
  private readonly now: () => number;
  private readonly generation: number;
  private readonly aligner: BarrierAligner | undefined;
  private readonly barrierSubjects: readonly string[];
  private readonly transactional: boolean;
  /** Before-images of sealed checkpoints until they commit; only with checkpointing. */
  private readonly undoLog: UndoLog | undefined;
  private input: TaskInput | undefined;
  /** Highest input sequence delivered: what a reopened input resumes after. */
  private seen = 0;
  private lastDelivery = 0;
  /** The checkpoint last sealed (or restored). */
  private sealedCheckpoint = 0;
  /** The checkpoint after whose seal the task stops (its next owner resumes from it); 0: none. */
  private stopAt = 0;
  /**
   * After a restore whose position had held records: up to `position`, only
   * the records of `held` producers after their barrier are new; the others
   * are in the restored state already.
   */
  private resumed: { readonly position: number; readonly held: ReadonlyMap<string, number> } | undefined;
  private uncommitted = 0;
  /** Settles when the current checkpoint's barriers are out; the loop and timers wait for it. */
  private pause: Promise<void> | undefined;
  private commitChain: Promise<void> = Promise.resolve();
  private readonly replay: InputMessage[] = [];
  /** Sink outputs of the checkpoint in progress (transactional sink). */
  private staging = new StagedOutputsWriter();
  /** Sealed staged outputs by checkpoint, until their commit publishes them: none of them was published before. */
  private readonly staged = new Map<number, StagedOutputs>();
  /** Staged keys already published: deleted with the next seal. */
  private publishedStaged: Uint8Array[] = [];
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private failure: MillraceError | Error | undefined;
  /**
   * How output ids begin: `<task>:<generation>:` for an internal stream (a
   * new run's records must not be taken for duplicates of the old run's, which
   * downstream ignores anyway), `<task>:` for a sink (a record replayed by a
   * new run gets the id of its first publication, so JetStream drops the copy
   * within its duplicate window).
   */
  private readonly idPrefix: string;
  /** Staged sink outputs are published as `<task>:c<checkpoint>:<i>`. */
  private readonly stagedIdPrefix: string;
  /** Whether the input is an internal stream: outputs then take their origin from the input record's id. */
  private readonly chainedOrigin: boolean;
  /** Prefix of the message ids of what the current record or timer emits, and the next index. */
  private origin = '';
  private outIndex = 0;
  /** Records processed when each sealed checkpoint was sealed, until it commits. */
  private readonly processedAtSeal = new Map<number, number>();
  /** Records processed up to the last committed checkpoint. */
  private processedAtCommit = 0;
  /** Infinity unless this is a checkpointed source task. */
  private readonly maxUncommitted: number;
  private resumeAfterCommit: (() => void) | undefined;
  /** Records since the event loop last ran, and when it must run again. */
  private sinceYield = 0;
  private yieldAt = 0;
  private loop: Promise<void> | undefined;
  /** Reused for every record: decoding allocates no holder object. */
  private readonly scratch: DecodedRecord = { value: undefined, key: '', timestamp: 0 };

  constructor(private readonly options: TaskOptions) {
    const { job, stage, partition, checkpointing, output } = options;
    this.id = `${job}/${stage.id}/${partition}`;
    this.log = options.logger.child({ job, stage: stage.id, task: this.id, partition });
    this.now = options.now ?? Date.now;
    this.generation = checkpointing?.generation ?? 0;
    this.positionKey = positionKey(job, stage.id, partition);
    this.decode = recordDecoder(stage.input, options.inputStream);
    this.prefixes = taskKeyPrefixes(job, stage, partition);
    this.undoLog = checkpointing ? new UndoLog(options.backend, { job, stage: stage.id, partition }) : undefined;
    const internalOutput = internalOutputStream(stage);
    this.idPrefix = internalOutput ? `${this.id}:${this.generation}:` : `${this.id}:`;
    this.stagedIdPrefix = `${this.id}:c`;
    this.chainedOrigin = stage.input.kind === 'stream' && stage.input.internal;
    this.maxUncommitted =
      checkpointing && checkpointing.upstream.length === 0 ? (checkpointing.maxUncommittedRecords ?? DEFAULT_MAX_UNCOMMITTED_RECORDS) : Infinity;
    this.barrierSubjects = internalOutput ? partitionSubjects(internalOutput, options.outputPartitions) : [];
    this.transactional = checkpointing !== undefined && !internalOutput && checkpointing.sinkMode !== 'immediate';
    this.aligner =
      checkpointing && checkpointing.upstream.length > 0
        ? new BarrierAligner(new Set(checkpointing.upstream), checkpointing.maxAlignmentRecords ?? DEFAULT_MAX_ALIGNMENT_RECORDS)
        : undefined;
    const publish = this.transactional
      ? (subject: string, data: Uint8Array, key: string, ts: number) => this.staging.append(subject, data, key, ts)
      : (subject: string, data: Uint8Array, key: string, ts: number) => output.publish(subject, data, key, ts, this.origin + this.outIndex++);
    const terminal = router(stage.output, options.outputPartitions, publish);
    this.chain = buildChain(stage.operations, terminal, (definition, downstream) => this.hostKeyed(definition, downstream));
  }

  /** Restores position, timers and staged outputs from the backend, opens the input and starts processing. */
  async start(): Promise<void> {
    this.state = 'restoring';
    const { job, stage, partition } = this.options;
    const stored = readTaskPosition(this.options.backend, job, stage.id, partition);
    this.committedSeq = stored.position;
    this.seen = resumeAfter(stored);
    this.resumed = this.seen < stored.position ? { position: stored.position, held: new Map(stored.held) } : undefined;
    this.sealedCheckpoint = this.committedCheckpoint = stored.checkpoint;
    this.aligner?.restoredFrom(stored.checkpoint);
    for (const op of this.operators) op.timers.restore(await this.storedTimers(op));
    await this.restoreStaged();
    if (this.options.checkpointing?.discardRestoredStaged) this.discardStaged();
    // What the backend holds is a committed checkpoint's state: its staged outputs may go out, but those an earlier run stored.
    if (this.options.checkpointing && this.staged.size > 0) this.publishStaged(stored.checkpoint, await this.storedStaged());
    this.input = await this.options.openInput(this.seen + 1);
    this.state = 'running';
    this.scheduleWake();
    this.loop = this.run();
    this.log.debug({ position: this.seen, checkpoint: stored.checkpoint, generation: this.generation }, 'task started');
  }

  /** Whether every record processed so far is sealed into the backend. */
  get caughtUp(): boolean {
    return this.committedSeq === this.seen && this.pause === undefined;
  }

  /** Settles when the task stops (resolves) or fails (rejects). */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /**
   * Coordinator's trigger, for a source task: seal checkpoint `n` now,
   * between two records. Ignored by tasks behind an internal stream (their
   * barriers arrive in their input), by a task not running, and for an `n`
   * not above the last sealed checkpoint.
   */
  triggerCheckpoint(n: number): void {
    if (this.aligner || this.state !== 'running' || n <= this.sealedCheckpoint || !this.options.checkpointing) return;
    this.seal(n);
  }

  /** Checkpoint `n` is committed: publish the sink outputs staged up to it. */
  checkpointCommitted(n: number): void {
    if (this.state !== 'running') return;
    for (const [sealed, processed] of this.processedAtSeal) {
      if (sealed > n) continue;
      this.processedAtCommit = Math.max(this.processedAtCommit, processed);
      this.processedAtSeal.delete(sealed);
    }
    this.resumeAfterCommit?.();
    this.undoLog?.checkpointCommitted(n);
    if (this.staged.size > 0) this.publishStaged(n);
  }

  /**
   * Hands the task over at checkpoint `n`: it stops right after sealing `n`
   * (its barriers out, its snapshot uploaded and acknowledged), processing
   * nothing beyond, so that another node can resume it from `n`. False when
   * it cannot stop there: it is not running, or sealed `n` already.
   */
  stopAfter(n: number): boolean {
    if (this.state !== 'running' || !this.options.checkpointing || n <= this.sealedCheckpoint) return false;
    this.stopAt = n;
    return true;
  }

  /**
   * Stops consuming. Without checkpointing the task first seals what it
   * processed; with it, what was processed since the last checkpoint is
   * dropped (recovery replays it from the checkpoint).
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = 'stopping';
    this.input?.stop();
    this.resumeAfterCommit?.();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    const output = this.options.output;
    try {
      while (this.state === 'running') {
        const input = this.input!;
        let reopen = false;
        for await (const msg of input.messages) {
          if (this.failure) throw this.failure;
          if (this.pause) await this.pause;
          if (this.state !== 'running') break;
          const delivery = msg.info.deliverySequence;
          if (delivery !== undefined) {
            if (this.lastDelivery > 0 && delivery !== this.lastDelivery + 1) {
              // A message was lost between server and client (e.g. a server restart): read again after what we have.
              reopen = true;
              break;
            }
            this.lastDelivery = delivery;
          }
          if (msg.seq <= this.seen) continue;
          this.seen = msg.seq;
          this.dispatch(msg);
          await this.drainReplay();
          if (this.state !== 'running') break;
          if ((++this.sinceYield & 255) === 0 && performance.now() >= this.yieldAt) await this.yieldToEventLoop();
          if (output.outstanding >= output.window) await output.capacity();
          if (this.processed - this.processedAtCommit >= this.maxUncommitted) await this.commitOrStop();
          if (!this.options.checkpointing && this.uncommitted >= (this.options.commitEveryRecords ?? 5000)) this.seal(0);
        }
        if (this.failure) throw this.failure;
        if (!reopen) break;
        this.log.warn({ after: this.seen, delivery: this.lastDelivery }, 'input skipped a delivery; reopening it');
        input.stop();
        this.lastDelivery = 0;
        this.input = await this.options.openInput(this.seen + 1);
      }
      if (!this.options.checkpointing && this.hasUnsealed()) this.seal(0);
      await this.pause;
      await this.commitChain;
      if (this.failure) throw this.failure;
      this.state = 'stopped';
      this.log.debug({ position: this.seen }, 'task stopped');
    } catch (err) {
      this.state = 'failed';
      this.failure ??= err as Error;
      this.input?.stop();
      throw this.failure;
    } finally {
      clearTimeout(this.wakeTimer);
    }
  }

  /** Waits until a checkpoint commits (or the task stops): the source is `maxUncommittedRecords` ahead. */
  private async commitOrStop(): Promise<void> {
    this.log.debug({ processed: this.processed - this.processedAtCommit }, 'source waits for a checkpoint to commit');
    await new Promise<void>((resolve) => (this.resumeAfterCommit = resolve));
    this.resumeAfterCommit = undefined;
  }

  /**
   * Lets timers and I/O run: a backlog is delivered faster than it is
   * processed, so without this a task could hold the event loop for seconds
   * and starve what must stay punctual on it (lease renewals, heartbeats).
   */
  private async yieldToEventLoop(): Promise<void> {
    await yieldImmediate();
    this.yieldAt = performance.now() + TIME_SLICE_MS;
  }

  /** Routes one delivered message: an old-generation leftover, a barrier, a held record, or a record to process. */
  private dispatch(msg: InputMessage): void {
    const headers = msg.headers;
    if (this.aligner && headers?.has(GENERATION_HEADER)) {
      const generation = Number(headers.get(GENERATION_HEADER));
      if (generation !== this.generation) {
        if (generation < this.generation) {
          this.ignored++;
          return;
        }
        throw millraceError(ErrorCodes.RUN_SUPERSEDED, `task ${this.id} (generation ${this.generation}) read a record of generation ${generation}`, {
          disposition: 'task-corrupted',
          details: { task: this.id, generation: this.generation, seen: generation },
        });
      }
      const producer = headers.get(PRODUCER_HEADER);
      if (this.resumed && !this.resumedIsNew(msg.seq, producer)) return;
      if (headers.has(BARRIER_HEADER)) return this.onBarrier(Number(headers.get(BARRIER_HEADER)), producer, msg.seq);
      if (this.aligner.holds(producer, msg)) {
        if (this.aligner.full) {
          this.log.warn({ checkpoint: this.aligner.current }, 'barrier alignment holds too many records; giving this checkpoint up');
          this.replay.push(...this.aligner.giveUp());
        }
        return;
      }
    }
    this.handle(msg);
  }

  /** Whether a record read again after a restore with held records is new to the state (else it is passed over). */
  private resumedIsNew(seq: number, producer: string): boolean {
    const resumed = this.resumed!;
    if (seq > resumed.position) {
      this.resumed = undefined;
      return true;
    }
    const barrierSeq = resumed.held.get(producer);
    return barrierSeq !== undefined && seq > barrierSeq;
  }

  private onBarrier(checkpoint: number, producer: string, seq: number): void {
    const outcome = this.aligner!.barrier(checkpoint, producer, seq);
    for (const msg of outcome.before) this.handle(msg);
    if (outcome.complete === undefined) return;
    this.seal(outcome.complete, outcome.held);
    if (this.state === 'running') this.replay.push(...outcome.after);
  }

  /** Processes records released by an alignment, each after any checkpoint in progress. */
  private async drainReplay(): Promise<void> {
    for (let i = 0; i < this.replay.length; i++) {
      if (this.pause) await this.pause;
      if (this.failure) throw this.failure;
      if (this.state !== 'running') break;
      this.dispatch(this.replay[i]!);
    }
    this.replay.length = 0;
  }

  /**
   * What identifies a record across runs: its input sequence, except behind
   * an internal stream, whose sequences differ from run to run. There it is
   * the upstream output's id without its generation
   * (`<upstream task>:<gen>:<origin>:<i>` → `<upstream task>:<origin>:<i>`), the
   * same in every run that replays the record.
   */
  private originOf(msg: InputMessage): string {
    const id = this.chainedOrigin ? msg.headers?.get(MSG_ID_HEADER) : undefined;
    if (!id) return String(msg.seq);
    const task = id.indexOf(':');
    const generation = id.indexOf(':', task + 1);
    return task > 0 && generation > task ? id.slice(0, task) + id.slice(generation) : String(msg.seq);
  }

  /** Runs one record through the chain; a bad record is reported and skipped. */
  private handle(msg: InputMessage): void {
    this.uncommitted++;
    this.lastRecordAt = Date.now();
    if (this.processed++ === 0) this.firstRecordAt = this.lastRecordAt;
    this.origin = `${this.idPrefix}${this.originOf(msg)}:`;
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

  /**
   * Seals checkpoint `n` (0: a local commit without a coordinator) at the
   * current position, `held` naming the producers whose later records wait
   * for the next checkpoint. Synchronous up to the pause: no record or timer
   * runs until the barriers are out. At the checkpoint of `stopAfter` the
   * task stops here: nothing after it is processed.
   */
  private seal(n: number, held: TaskPosition['held'] = []): void {
    const writes: BackendWrite[] = [];
    const seals = this.operators.map((op) => {
      op.timers.seal(writes);
      return op.store.seal(writes);
    });
    const { job, stage, partition } = this.options;
    if (this.staging.count > 0) {
      const packed = this.staging.finish(Date.now());
      writes.push({ key: stagedKey(job, stage.id, partition, n), value: packed });
      this.staged.set(n, new StagedOutputs(packed));
      this.staging = new StagedOutputsWriter();
    }
    // Outputs already stored in their streams: a rollback need not bring them back, so the undo log skips them.
    const publishedDeletes: BackendWrite[] = this.publishedStaged.map((key) => ({ key, value: undefined }));
    this.publishedStaged = [];
    const position = this.seen;
    const checkpoint = n === 0 ? this.sealedCheckpoint : n;
    const at: TaskPosition = { position, checkpoint, generation: this.generation, held };
    writes.push(positionWrite(this.positionKey, at));
    if (n > 0 && n === this.stopAt) this.handOver();
    this.sealedCheckpoint = checkpoint;
    this.uncommitted = 0;
    if (n > 0) this.processedAtSeal.set(n, this.processed);

    const output = this.options.output;
    // State must never run ahead of its outputs, nor a barrier: both wait until everything published before the seal is acknowledged.
    const published = output.mark();
    const barriers = n > 0 ? this.barrierSubjects : [];
    const pause = (async () => {
      await this.pause;
      if (barriers.length === 0) return;
      await output.flushed(published);
      barriers.forEach((subject, p) => output.barrier(subject, n, `${this.id}:${this.generation}:b:${n}:${p}`));
      await output.flushed(output.mark());
    })();
    this.pause = pause;
    pause.then(
      () => {
        if (this.pause === pause) this.pause = undefined;
        this.scheduleWake();
      },
      (err) => this.fail(err),
    );

    const sealed = this.options.checkpointing?.sealed;
    const landed = this.commitChain.then(async () => {
      // A transactional sink publishes only committed outputs, which stay staged in the backend until acknowledged: nothing it published can fall behind this state.
      if (!this.transactional) await output.flushed(published);
      const undo = this.undoLog && n > 0 ? await this.undoLog.recordFor(n, this.generation, writes) : [];
      writes.push(...publishedDeletes);
      await this.options.backend.write(undo.length > 0 ? [...writes, ...undo] : writes);
      this.operators.forEach((op, i) => op.store.committed(seals[i]!));
      this.committedSeq = position;
      this.committedCheckpoint = checkpoint;
      if (sealed && n > 0) {
        await sealed({ task: this.id, checkpoint: n, generation: this.generation, position, resumeAfter: resumeAfter(at), writes, prefixes: this.prefixes });
      }
    });
    this.commitChain = landed;
    landed.catch((err) => this.fail(err));
  }

  /** Stops at the seal of `stopAt`: the loop ends once this seal has landed and been acknowledged. */
  private handOver(): void {
    this.handedOverAt = Date.now();
    this.state = 'stopping';
    this.input?.stop();
    this.resumeAfterCommit?.();
    this.log.info({ checkpoint: this.stopAt, position: this.seen, handedOverAt: this.handedOverAt }, 'task handed over');
  }

  /** Whether anything changed since the last seal (records, state, timers). */
  private hasUnsealed(): boolean {
    return this.uncommitted > 0 || this.operators.some((op) => op.store.dirtyCount > 0 || op.timers.dirtyCount > 0);
  }

  /** Drops every staged output unpublished; their keys go with the next seal. */
  private discardStaged(): void {
    const { job, stage, partition } = this.options;
    for (const checkpoint of this.staged.keys()) this.publishedStaged.push(stagedKey(job, stage.id, partition, checkpoint));
    this.staged.clear();
  }

  /**
   * Publishes the staged outputs of every checkpoint up to `n`, in order,
   * but those whose ids are in `stored`; their keys go with the next seal.
   */
  private publishStaged(n: number, stored: ReadonlySet<string> = new Set()): void {
    const { job, stage, partition, output } = this.options;
    for (const checkpoint of [...this.staged.keys()].sort((a, b) => a - b)) {
      if (checkpoint > n) break;
      const idPrefix = `${this.stagedIdPrefix}${checkpoint}:`;
      this.staged.get(checkpoint)!.forEach((subject, data, key, ts, i) => {
        const id = idPrefix + i;
        if (!stored.has(id)) output.publish(subject, data, key, ts, id);
      });
      this.staged.delete(checkpoint);
      const stagedAt = stagedKey(job, stage.id, partition, checkpoint);
      output.flushed(output.mark()).then(
        () => this.publishedStaged.push(stagedAt),
        (err) => this.fail(err),
      );
    }
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

  private async restoreStaged(): Promise<void> {
    const { job, stage, partition } = this.options;
    for await (const [key, value] of this.options.backend.entries(stagedPrefix(job, stage.id, partition))) {
      const decoded = decodeKey(key);
      if (decoded.kind !== 'staged') continue;
      this.staged.set(decoded.checkpoint, new StagedOutputs(value));
    }
  }

  /**
   * The ids of restored staged outputs that a run before the crash already
   * published (it stopped part way): publishing them again is deduplicated
   * only within the destination's duplicate window, so the output looks them up.
   */
  private async storedStaged(): Promise<ReadonlySet<string>> {
    const lookup = this.options.output.storedIds;
    if (!lookup) return new Set();
    const subjects = new Set<string>();
    let since = Infinity;
    for (const outputs of this.staged.values()) {
      since = Math.min(since, outputs.sealedAt);
      for (const subject of outputs.subjects) subjects.add(subject);
    }
    return lookup({ subjects: [...subjects], prefix: this.stagedIdPrefix, since: since - STAGED_CLOCK_SLACK_MS });
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
    // During a checkpoint's pause timers wait: what they emit must follow the barrier (the pause re-arms the wake-up).
    if (this.state !== 'running' || this.pause) return;
    const now = this.now();
    try {
      for (const op of this.operators) {
        for (let t = op.timers.popDue(now); t; t = op.timers.popDue(now)) {
          this.origin = `${this.idPrefix}t:${t.ts}:${t.key}:`;
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

/**
 * Every key prefix the task of `stage` over `partition` owns in the backend:
 * its position, its staged outputs, and the state and timers of each keyed
 * operator of the stage.
 */
export function taskKeyPrefixes(job: string, stage: StagePlan, partition: number): Uint8Array[] {
  const prefixes = [positionKey(job, stage.id, partition), stagedPrefix(job, stage.id, partition)];
  for (const op of stage.operations) {
    if (op.kind !== 'process') continue;
    const space = keyspace(job, op.definition.name, partition);
    prefixes.push(space.statePrefix, space.timerPrefix);
  }
  return prefixes;
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
