/**
 * Puts packed snapshots into the object store from a worker thread
 * (snapshot-upload-worker.ts), so that hashing and chunking them does not
 * take the thread that processes records. The worker is started on the
 * first put and again after it died; a put in flight when it died fails,
 * and the task uploads a full snapshot with its next checkpoint, as after
 * any failed upload.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ErrorCodes, millraceError } from '../../errors.js';
import type { UploadFailure, UploadReply, UploadRequest, UploadWorkerData } from './snapshot-upload-worker.js';

/** Where packed snapshots go: the object store, by `putBlob` in some thread. */
export interface BlobUploader {
  /** Stores `bytes` as object `name`; rejects with what the object store said. `bytes` stays the caller's. */
  put(name: string, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface WorkerUploaderOptions extends UploadWorkerData {
  readonly logger: Logger;
  /** How long `close()` lets puts in flight finish. @default 10000 */
  readonly closeTimeoutMs?: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const WORKER_URL = new URL('./snapshot-upload-worker.js', import.meta.url);

/** An upload failed in the worker: the fields of the NATS error it raised, for translateNatsError. */
export class UploadError extends Error {
  readonly code: string | undefined;
  readonly api_error: UploadFailure['api_error'];

  constructor(failure: UploadFailure) {
    super(failure.message);
    this.name = 'UploadError';
    this.code = failure.code;
    this.api_error = failure.api_error;
  }
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

interface Running {
  readonly worker: Worker;
  readonly ready: Promise<void>;
}

export class WorkerUploader implements BlobUploader {
  private running: Running | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: WorkerUploaderOptions) {}

  async put(name: string, bytes: Uint8Array): Promise<void> {
    if (this.closed) throw millraceError(ErrorCodes.NODE_STOPPED, `cannot upload snapshot ${name}: the node is stopping`);
    const { worker, ready } = this.running ?? this.spawn();
    const id = this.nextId++;
    // Pending from now on, so that a close() meanwhile waits for it.
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // A copy the worker can own: `bytes` may share its ArrayBuffer with others (msgpackr's, Buffer's pool), and transferring detaches it.
    const owned = new Uint8Array(bytes);
    ready.then(
      () => worker.postMessage({ kind: 'put', id, name, bytes: owned } satisfies UploadRequest, [owned.buffer as ArrayBuffer]),
      (err: Error) => this.settle(id, err),
    );
    return done;
  }

  async close(): Promise<void> {
    this.closed = true;
    const running = this.running;
    if (!running) return;
    const settled = Promise.allSettled([...this.pending.keys()].map((id) => new Promise<void>((r) => this.onSettle(id, r))));
    await Promise.race([settled, delay(this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS)]);
    const exited = new Promise<void>((r) => running.worker.once('exit', () => r()));
    running.worker.postMessage({ kind: 'close' } satisfies UploadRequest);
    const timeout = delay(this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS).then(() => 'timeout' as const);
    if ((await Promise.race([exited, timeout])) === 'timeout') await running.worker.terminate();
  }

  private spawn(): Running {
    const { logger, closeTimeoutMs: _, ...data } = this.options;
    const worker = new Worker(WORKER_URL, { workerData: data satisfies UploadWorkerData, name: 'millrace-snapshot-upload' });
    let onReady!: () => void;
    let onFailed!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => ((onReady = resolve), (onFailed = reject)));
    ready.catch(() => undefined); // a put awaits it; a spawn with no put must not leave it unhandled
    const running: Running = { worker, ready };
    worker.on('message', (reply: UploadReply) => {
      if (reply.kind === 'ready') return onReady();
      if (reply.kind === 'failed') {
        onFailed(new UploadError(reply.error));
        void worker.terminate();
        return;
      }
      this.settle(reply.id, reply.error && new UploadError(reply.error));
    });
    worker.on('error', (err) => logger.error({ err }, 'snapshot upload worker failed'));
    worker.on('exit', (code) => {
      if (this.running === running) this.running = undefined;
      const lost = new UploadError({ message: `the snapshot upload worker exited (code ${code}) before the upload finished` });
      onFailed(lost);
      for (const id of this.pending.keys()) this.settle(id, lost);
    });
    this.running = running;
    return running;
  }

  /** Put `id` is done: resolved without `error`. */
  private settle(id: number, error: Error | undefined): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    if (error) pending.reject(error);
    else pending.resolve();
  }

  /** Calls `settled` once put `id` has settled. */
  private onSettle(id: number, settled: () => void): void {
    const pending = this.pending.get(id);
    if (!pending) return settled();
    this.pending.set(id, {
      resolve: () => (pending.resolve(), settled()),
      reject: (err) => (pending.reject(err), settled()),
    });
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
