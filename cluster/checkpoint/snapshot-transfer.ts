/**
 * Moves packed snapshots in and out of the object store from a worker
 * thread (snapshot-transfer-worker.ts), so that hashing and chunking them
 * does not take the thread that processes records (decision 004). The
 * worker is started by `open()` or the first request, and again after it
 * died; a request in flight when it died fails, as a NATS failure would: an
 * upload is retried as a full snapshot with the next checkpoint, a restore
 * fails the run.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ErrorCodes, millraceError } from '../../errors.js';
import { replicasOf } from '../transport/replicas.js';
import type { TransferFailure, TransferReply, TransferRequest, TransferWorkerData } from './snapshot-transfer-worker.js';

/** How packed snapshots reach the object store and come back. */
export interface BlobTransfer {
  /** Stores `bytes` as object `name`; rejects with what the object store said. `bytes` stays the caller's. */
  put(name: string, bytes: Uint8Array): Promise<void>;
  /** Object `name`, or `null` if there is none. */
  get(name: string): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

export interface WorkerBlobTransferOptions extends TransferWorkerData {
  readonly logger: Logger;
  /** How long `close()` lets requests in flight finish. @default 10000 */
  readonly closeTimeoutMs?: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const WORKER_URL = new URL('./snapshot-transfer-worker.js', import.meta.url);

/** A transfer failed in the worker: the fields of the NATS error it raised, for translateNatsError. */
export class TransferError extends Error {
  readonly code: string | undefined;
  readonly api_error: TransferFailure['api_error'];

  constructor(failure: TransferFailure) {
    super(failure.message);
    this.name = 'TransferError';
    this.code = failure.code;
    this.api_error = failure.api_error;
  }
}

interface Pending {
  resolve(bytes: Uint8Array | null | undefined): void;
  reject(err: Error): void;
}

interface Running {
  readonly worker: Worker;
  readonly ready: Promise<void>;
}

type Request = { kind: 'put'; name: string; bytes: Uint8Array } | { kind: 'get'; name: string };

export class WorkerBlobTransfer implements BlobTransfer {
  private running: Running | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: WorkerBlobTransferOptions) {
    replicasOf(options.replicas); // a bad count is the caller's mistake: say so here, not in the worker
  }

  /**
   * Starts the worker now rather than at the first request, so that its
   * thread and connection are up before a restore or the first upload waits
   * for them. A worker that fails to start is started again by the next
   * request.
   */
  open(): void {
    if (!this.closed && !this.running) this.spawn();
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    // A copy the worker can own: `bytes` may share its ArrayBuffer with others (msgpackr's, Buffer's pool), and transferring detaches it.
    await this.request({ kind: 'put', name, bytes: new Uint8Array(bytes) });
  }

  async get(name: string): Promise<Uint8Array | null> {
    return (await this.request({ kind: 'get', name })) ?? null;
  }

  async close(): Promise<void> {
    this.closed = true;
    const running = this.running;
    if (!running) return;
    const timeoutMs = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const settled = Promise.allSettled([...this.pending.keys()].map((id) => new Promise<void>((r) => this.onSettle(id, r))));
    await Promise.race([settled, delay(timeoutMs)]);
    const exited = new Promise<void>((r) => running.worker.once('exit', () => r()));
    running.worker.postMessage({ kind: 'close' } satisfies TransferRequest);
    if ((await Promise.race([exited.then(() => 'exited' as const), delay(timeoutMs).then(() => 'timeout' as const)])) === 'timeout') {
      await running.worker.terminate();
    }
  }

  private request(request: Request): Promise<Uint8Array | null | undefined> {
    if (this.closed) return Promise.reject(millraceError(ErrorCodes.NODE_STOPPED, `cannot transfer snapshot ${request.name}: the node is stopping`));
    const { worker, ready } = this.running ?? this.spawn();
    const id = this.nextId++;
    // Pending from now on, so that a close() meanwhile waits for it.
    const done = new Promise<Uint8Array | null | undefined>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    ready.then(
      () => {
        const message = { ...request, id } satisfies TransferRequest;
        if (request.kind === 'put') worker.postMessage(message, [request.bytes.buffer as ArrayBuffer]);
        else worker.postMessage(message);
      },
      (err: Error) => this.settle(id, err),
    );
    return done;
  }

  private spawn(): Running {
    const { logger, closeTimeoutMs: _, ...data } = this.options;
    const worker = new Worker(WORKER_URL, { workerData: data satisfies TransferWorkerData, name: 'millrace-snapshot-transfer' });
    let onReady!: () => void;
    let onFailed!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => ((onReady = resolve), (onFailed = reject)));
    ready.catch(() => undefined); // every request awaits it; none must leave it unhandled
    const running: Running = { worker, ready };
    worker.on('message', (reply: TransferReply) => {
      if (reply.kind === 'ready') return onReady();
      if (reply.kind === 'failed') {
        onFailed(new TransferError(reply.error));
        void worker.terminate();
        return;
      }
      this.settle(reply.id, reply.error && new TransferError(reply.error), reply.bytes);
    });
    worker.on('error', (err) => logger.error({ err }, 'snapshot transfer worker failed'));
    worker.on('exit', (code) => {
      if (this.running === running) this.running = undefined;
      const lost = new TransferError({ message: `the snapshot transfer worker exited (code ${code}) before the transfer finished` });
      onFailed(lost);
      for (const id of this.pending.keys()) this.settle(id, lost);
    });
    this.running = running;
    return running;
  }

  /** Request `id` is done: resolved with `bytes` unless `error`. */
  private settle(id: number, error: Error | undefined, bytes?: Uint8Array | null): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    if (error) pending.reject(error);
    else pending.resolve(bytes);
  }

  /** Calls `settled` once request `id` has settled. */
  private onSettle(id: number, settled: () => void): void {
    const pending = this.pending.get(id);
    if (!pending) return settled();
    this.pending.set(id, {
      resolve: (bytes) => (pending.resolve(bytes), settled()),
      reject: (err) => (pending.reject(err), settled()),
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
