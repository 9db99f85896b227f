/**
 * The worker thread behind SnapshotUploader: its own NATS connection, and
 * `putBlob` into the snapshot bucket for every packed snapshot the node's
 * thread hands it. nats.js computes each object's SHA-256 digest in
 * JavaScript and publishes its chunks one by one; done on the node's thread,
 * that was a tenth of a checkpointing node's CPU, taken from processing.
 *
 * Messages: in, `UploadRequest` (`put`, then `close` once); out,
 * `UploadReply` (`ready` or `failed` once after connecting, then one `done`
 * per put).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ObjectStore } from 'nats';
import { connectNats } from '../transport/connection.js';

export interface UploadWorkerData {
  readonly servers: readonly string[];
  readonly name: string;
  readonly bucket: string;
}

export type UploadRequest = { kind: 'put'; id: number; name: string; bytes: Uint8Array } | { kind: 'close' };

/** What the worker could say about a failure: the fields translateNatsError reads. */
export interface UploadFailure {
  message: string;
  code?: string;
  api_error?: { code?: number; err_code?: number; description?: string };
}

export type UploadReply =
  | { kind: 'ready' }
  | { kind: 'failed'; error: UploadFailure }
  | { kind: 'done'; id: number; error?: UploadFailure };

function failure(err: unknown): UploadFailure {
  const e = err as Partial<UploadFailure> & { message?: string };
  return { message: e?.message ?? String(err), ...(e?.code !== undefined && { code: String(e.code) }), ...(e?.api_error && { api_error: e.api_error }) };
}

async function main(port: NonNullable<typeof parentPort>, data: UploadWorkerData): Promise<void> {
  let os: ObjectStore;
  let closing: Promise<void> | undefined;
  const nc = await connectNats({ servers: data.servers, name: data.name }).catch((err) => {
    port.postMessage({ kind: 'failed', error: failure(err) } satisfies UploadReply);
    return undefined;
  });
  if (!nc) return;
  try {
    os = await nc.jetstream().views.os(data.bucket);
  } catch (err) {
    port.postMessage({ kind: 'failed', error: failure(err) } satisfies UploadReply);
    await nc.close();
    return;
  }
  port.on('message', (request: UploadRequest) => {
    if (request.kind === 'close') {
      closing ??= nc.drain().finally(() => port.close());
      return;
    }
    os.putBlob({ name: request.name }, request.bytes).then(
      () => port.postMessage({ kind: 'done', id: request.id } satisfies UploadReply),
      (err) => port.postMessage({ kind: 'done', id: request.id, error: failure(err) } satisfies UploadReply),
    );
  });
  port.postMessage({ kind: 'ready' } satisfies UploadReply);
}

if (parentPort) void main(parentPort, workerData as UploadWorkerData);
