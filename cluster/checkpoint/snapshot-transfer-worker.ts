/**
 * The worker thread behind WorkerBlobTransfer: its own NATS connection, and
 * `putBlob` / `getBlob` on the snapshot bucket for the node's thread.
 * nats.js computes every object's SHA-256 digest in JavaScript, on upload
 * and again to verify a download, and moves it chunk by chunk; done on the
 * node's thread, that was a tenth of a checkpointing node's CPU and a
 * quarter of a restore from the snapshot store (decision 004).
 *
 * Messages: in, `TransferRequest` (`put` and `get`, then `close` once); out,
 * `TransferReply` (`ready` or `failed` once after connecting, then one `done`
 * per request).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ObjectStore } from 'nats';
import { connectNats } from '../transport/connection.js';
import { DEFAULT_REPLICAS } from '../transport/replicas.js';

export interface TransferWorkerData {
  readonly servers: readonly string[];
  /** The connection's name, shown by the server. */
  readonly name: string;
  readonly bucket: string;
  /**
   * Servers that keep a copy of the bucket, if the worker creates it (the
   * node's SnapshotStore.open may be first: pass both the same count).
   * @default {@link DEFAULT_REPLICAS} (`1`)
   */
  readonly replicas?: number;
}

export type TransferRequest =
  | { kind: 'put'; id: number; name: string; bytes: Uint8Array }
  | { kind: 'get'; id: number; name: string }
  | { kind: 'close' };

/** What the worker can say about a failure: the fields translateNatsError reads. */
export interface TransferFailure {
  message: string;
  code?: string;
  api_error?: { code?: number; err_code?: number; description?: string };
}

export type TransferReply =
  | { kind: 'ready' }
  | { kind: 'failed'; error: TransferFailure }
  /** `bytes`: a get's object (`null` when there is none); absent for a put. */
  | { kind: 'done'; id: number; bytes?: Uint8Array | null; error?: TransferFailure };

function failure(err: unknown): TransferFailure {
  const e = err as Partial<TransferFailure> & { message?: string };
  return { message: e?.message ?? String(err), ...(e?.code !== undefined && { code: String(e.code) }), ...(e?.api_error && { api_error: e.api_error }) };
}

function reply(port: NonNullable<typeof parentPort>, message: TransferReply): void {
  const bytes = message.kind === 'done' ? message.bytes : undefined;
  if (!bytes) return port.postMessage(message);
  // Transferred, not copied: a copy the size of a full snapshot would cost the node's thread again.
  const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
  port.postMessage({ ...message, bytes: owned }, [owned.buffer as ArrayBuffer]);
}

async function serve(port: NonNullable<typeof parentPort>, data: TransferWorkerData): Promise<void> {
  let os: ObjectStore;
  const nc = await connectNats({ servers: data.servers, name: data.name }).catch((err) => {
    reply(port, { kind: 'failed', error: failure(err) });
    return undefined;
  });
  if (!nc) return;
  try {
    os = await nc.jetstream().views.os(data.bucket, { replicas: data.replicas ?? DEFAULT_REPLICAS });
  } catch (err) {
    reply(port, { kind: 'failed', error: failure(err) });
    await nc.close();
    return;
  }
  let closing: Promise<void> | undefined;
  port.on('message', (request: TransferRequest) => {
    switch (request.kind) {
      case 'close':
        closing ??= nc.drain().finally(() => port.close());
        return;
      case 'put':
        return void os.putBlob({ name: request.name }, request.bytes).then(
          () => reply(port, { kind: 'done', id: request.id }),
          (err) => reply(port, { kind: 'done', id: request.id, error: failure(err) }),
        );
      case 'get':
        return void os.getBlob(request.name).then(
          (bytes) => reply(port, { kind: 'done', id: request.id, bytes }),
          (err) => reply(port, { kind: 'done', id: request.id, error: failure(err) }),
        );
    }
  });
  reply(port, { kind: 'ready' });
}

if (parentPort) void serve(parentPort, workerData as TransferWorkerData);
