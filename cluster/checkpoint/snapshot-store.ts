/**
 * Snapshots other nodes can read: what a task's state store changed up to a
 * checkpoint, uploaded to the JetStream object store. A snapshot is either a
 * full copy of a task's keys or a delta (the writes since the previous
 * checkpoint, deletes included); a task restores from a chain: one full, then
 * its deltas in order. Working state stays in the StateBackend; this store
 * only sees snapshots (STYLE 4).
 */
import type { JetStreamClient, JetStreamManager, ObjectStore } from 'nats';
import { ErrorCodes, millraceError } from '../../errors.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { decodeWrites, encodeWrites } from '../../runtime/state/write-batch-codec.js';
import { translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';
import type { BlobTransfer } from './snapshot-transfer.js';

export const DEFAULT_SNAPSHOT_BUCKET = 'millrace_snapshots';

export interface SnapshotRef {
  readonly job: string;
  /** `<job>/<stage>/<partition>` */
  readonly task: string;
  readonly checkpoint: number;
  /** The job's run that sealed it: an aborted run may have used the same checkpoint id. */
  readonly generation: number;
  readonly kind: 'full' | 'delta';
}

/** Object name of a snapshot: sorts a task's snapshots by checkpoint. */
export function snapshotName(ref: SnapshotRef): string {
  return `${ref.task}/${String(ref.checkpoint).padStart(12, '0')}-g${ref.generation}-${ref.kind}`;
}

/** The checkpoint, generation and kind in a snapshot's name (NaN fields if it is not one). */
export function parseSnapshotName(name: string): Pick<SnapshotRef, 'checkpoint' | 'generation' | 'kind'> {
  const [checkpoint, generation, kind] = name.slice(name.lastIndexOf('/') + 1).split('-');
  return { checkpoint: Number(checkpoint), generation: Number(generation?.slice(1)), kind: kind as SnapshotRef['kind'] };
}

/** What a task's snapshots must keep: every name a retained checkpoint or savepoint needs, and the first of the newest chain. */
export interface KeptSnapshots {
  readonly names: ReadonlySet<string>;
  readonly base: string;
}

/** Whether snapshot `s` comes before `base`: an older checkpoint, or the delta of the base's own. */
function olderThanBase(s: ReturnType<typeof parseSnapshotName>, base: ReturnType<typeof parseSnapshotName>): boolean {
  return s.checkpoint < base.checkpoint || (s.checkpoint === base.checkpoint && s.kind === 'delta' && base.kind === 'full');
}

export interface SnapshotStoreOptions extends ReplicasOption {
  /** @default DEFAULT_SNAPSHOT_BUCKET */
  readonly bucket?: string;
  /**
   * Who moves snapshots in and out of the bucket. A node passes a
   * WorkerBlobTransfer, so that hashing and chunking happen off its
   * processing thread.
   * @default putBlob and getBlob on this thread's connection
   */
  readonly transfer?: BlobTransfer;
}

export class SnapshotStore {
  private constructor(
    private readonly os: ObjectStore,
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
    private readonly transfer: BlobTransfer,
  ) {}

  static async open(js: JetStreamClient, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const bucket = options.bucket ?? DEFAULT_SNAPSHOT_BUCKET;
    const replicas = replicasOf(options.replicas);
    try {
      const os = await js.views.os(bucket, { replicas });
      const transfer: BlobTransfer = options.transfer ?? {
        put: async (name, bytes) => void (await os.putBlob({ name }, bytes)),
        get: (name) => os.getBlob(name),
        close: async () => {},
      };
      return new SnapshotStore(os, await js.jetstreamManager(), bucket, transfer);
    } catch (err) {
      throw translateNatsError(err, `cannot open snapshot bucket "${bucket}"`);
    }
  }

  /** Uploads `writes` as the snapshot `ref`; returns its name for the manifest. */
  async put(ref: SnapshotRef, writes: readonly BackendWrite[]): Promise<string> {
    const name = snapshotName(ref);
    try {
      await this.transfer.put(name, encodeWrites(writes));
    } catch (err) {
      throw translateNatsError(err, `cannot upload snapshot ${name}`);
    }
    return name;
  }

  /** The writes of snapshot `name`. */
  async read(name: string): Promise<BackendWrite[]> {
    let blob: Uint8Array | null;
    try {
      blob = await this.transfer.get(name);
    } catch (err) {
      throw translateNatsError(err, `cannot download snapshot ${name}`);
    }
    if (!blob) throw millraceError(ErrorCodes.STATE_CORRUPTED, `snapshot ${name} is missing from the snapshot store`, { disposition: 'task-corrupted' });
    return decodeWrites(blob, `snapshot ${name}`);
  }

  /** Applies a chain (a full snapshot, then deltas) to `backend`, one atomic batch per snapshot. */
  async restore(chain: readonly string[], backend: StateBackend): Promise<void> {
    if (chain.length > 0 && !chain[0]!.endsWith('-full')) {
      throw millraceError(ErrorCodes.STATE_CORRUPTED, `a snapshot chain must start with a full snapshot, not ${chain[0]}`, {
        disposition: 'task-corrupted',
      });
    }
    await this.apply(chain, backend);
  }

  /** Applies snapshots in order, one atomic batch each; the next downloads while the previous is written. */
  async apply(snapshots: readonly string[], backend: StateBackend): Promise<void> {
    let next = snapshots.length > 0 ? this.read(snapshots[0]!) : undefined;
    for (let i = 0; next; i++) {
      const writes = await next;
      next = i + 1 < snapshots.length ? this.read(snapshots[i + 1]!) : undefined;
      next?.catch(() => undefined); // awaited on the next turn; a failed write must not leave it unhandled
      await backend.write(writes);
    }
  }

  /**
   * Deletes, for each task in `keep`, its snapshots that its set does not
   * name and that are older than the first snapshot of its newest chain
   * (`base`); returns how many. A snapshot at or after the base that no one
   * names yet may be in progress: the delta of a checkpoint not committed yet,
   * or a full snapshot uploading in the background to start a later chain
   * (TaskSnapshots.compactIfDue). Snapshots of tasks not in `keep` are left
   * alone.
   *
   * One listing serves every task: a listing reads the metadata of every
   * object in the bucket, so a listing per task per cleanup loaded the
   * server in proportion to tasks × objects. A deleted object leaves a
   * tombstone in the bucket's stream that every later listing would read
   * again; it is purged right after the delete.
   */
  async collect(keep: ReadonlyMap<string, KeptSnapshots>): Promise<number> {
    let deleted = 0;
    try {
      for (const info of await this.os.list()) {
        const task = info.name.slice(0, info.name.lastIndexOf('/'));
        const kept = keep.get(task);
        if (!kept || kept.names.has(info.name) || !olderThanBase(parseSnapshotName(info.name), parseSnapshotName(kept.base))) continue;
        await this.os.delete(info.name);
        await this.jsm.streams.purge(`OBJ_${this.bucket}`, { filter: this.metaSubject(info.name) });
        deleted++;
      }
    } catch (err) {
      throw translateNatsError(err, `cannot collect snapshots in bucket "${this.bucket}"`);
    }
    return deleted;
  }

  /** Where the object store keeps an object's metadata (the object store's wire format, ADR-20: padded base64url of the name). */
  private metaSubject(name: string): string {
    const encoded = Buffer.from(name).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    return `$O.${this.bucket}.M.${encoded}`;
  }
}
