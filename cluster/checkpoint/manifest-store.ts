/**
 * Completed checkpoints: one manifest per job in a JetStream KV bucket. The
 * compare-and-set write of the next manifest IS the checkpoint's commit
 * (ARCHITECTURE, checkpoint step 4): a manifest is accepted only if it follows
 * the current one (checkpoint id + 1 or more), comes from a leader epoch no
 * older than the current one's, and nobody wrote in between.
 * The bucket keeps the last few manifests per job, so snapshots that no
 * retained checkpoint needs can be found and collected.
 */
import type { JetStreamClient, KV } from 'nats';
import { ErrorCodes, millraceError } from '../../errors.js';
import { isWrongLastSequence, translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';

/** What a task's part of a checkpoint records. */
export interface TaskCheckpoint {
  /** Input position per input (stream/partition → last sequence included). */
  readonly positions: Readonly<Record<string, number>>;
  /** Snapshot objects to restore from, oldest (full) first. */
  readonly snapshots: readonly string[];
}

export interface CheckpointManifest {
  readonly job: string;
  /** The checkpoint id (the epoch of its barriers). */
  readonly checkpoint: number;
  /** The job's restart counter. */
  readonly generation: number;
  /** The epoch of the leader lease of the coordinator that committed it. */
  readonly leaderEpoch: number;
  /** ms since the epoch */
  readonly completedAt: number;
  readonly tasks: Readonly<Record<string, TaskCheckpoint>>;
  /** Set on a manifest written by a savepoint restore: the savepoint and the checkpoint it was taken at. */
  readonly restoredFrom?: { readonly savepoint: string; readonly checkpoint: number };
}

export interface StoredManifest {
  readonly manifest: CheckpointManifest;
  /** KV revision: pass it to the next `commit`. */
  readonly revision: number;
}

export const DEFAULT_MANIFEST_BUCKET = 'millrace_checkpoints';
/** Manifests kept per job. */
export const DEFAULT_RETAINED_CHECKPOINTS = 5;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface ManifestStoreOptions extends ReplicasOption {
  /** @default {@link DEFAULT_MANIFEST_BUCKET} (`'millrace_checkpoints'`) */
  readonly bucket?: string;
  /** Manifests kept per job (the bucket's history), if this call creates the bucket. @default {@link DEFAULT_RETAINED_CHECKPOINTS} (`5`) */
  readonly retained?: number;
}

export class ManifestStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the checkpoint bucket, creating it (with `options.replicas` copies) when it does not exist. */
  static async open(js: JetStreamClient, options: ManifestStoreOptions = {}): Promise<ManifestStore> {
    const bucket = options.bucket ?? DEFAULT_MANIFEST_BUCKET;
    const replicas = replicasOf(options.replicas);
    try {
      return new ManifestStore(await js.views.kv(bucket, { history: options.retained ?? DEFAULT_RETAINED_CHECKPOINTS, replicas }));
    } catch (err) {
      throw translateNatsError(err, `cannot open checkpoint bucket "${bucket}"`);
    }
  }

  /** The last committed checkpoint of `job`, or `undefined`. */
  async latest(job: string): Promise<StoredManifest | undefined> {
    const entry = await this.kv.get(job);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { manifest: decode(entry.value), revision: entry.revision };
  }

  /** The retained checkpoints of `job`, oldest first. */
  async retained(job: string): Promise<StoredManifest[]> {
    const out: StoredManifest[] = [];
    const iter = await this.kv.history({ key: job });
    for await (const entry of iter) {
      // nats.js can yield an empty slot when the history changes while it is read.
      if (entry?.operation === 'PUT') out.push({ manifest: decode(entry.value), revision: entry.revision });
    }
    return out;
  }

  /**
   * Writes `previous` again stamped with `leaderEpoch`, with compare-and-set:
   * from then on a coordinator of an older epoch (a zombie that has not yet
   * noticed it lost the lease) can commit nothing, as its compare-and-set
   * fails. A new leader claims the job's last manifest before it runs the job.
   * Throws MR_CHECKPOINT_CONFLICT when another manifest was committed since.
   */
  async claim(previous: StoredManifest, leaderEpoch: number): Promise<StoredManifest> {
    const manifest = { ...previous.manifest, leaderEpoch };
    try {
      return { manifest, revision: await this.kv.update(manifest.job, encoder.encode(JSON.stringify(manifest)), previous.revision) };
    } catch (err) {
      if (isWrongLastSequence(err)) {
        throw millraceError(ErrorCodes.CHECKPOINT_CONFLICT, `job "${manifest.job}": a manifest was committed while leader epoch ${leaderEpoch} claimed checkpoint ${manifest.checkpoint}`, {
          details: { job: manifest.job, checkpoint: manifest.checkpoint, leaderEpoch },
        });
      }
      throw translateNatsError(err, `cannot claim checkpoint ${manifest.checkpoint} of job "${manifest.job}"`);
    }
  }

  /**
   * Commits `manifest` after `previous` (undefined for a job's first).
   * Throws MR_CHECKPOINT_CONFLICT when it does not follow, or lost the race.
   */
  async commit(manifest: CheckpointManifest, previous: StoredManifest | undefined): Promise<number> {
    const conflict = (why: string) =>
      millraceError(ErrorCodes.CHECKPOINT_CONFLICT, `checkpoint ${manifest.checkpoint} of job "${manifest.job}" not committed: ${why}`, {
        details: {
          job: manifest.job,
          checkpoint: manifest.checkpoint,
          leaderEpoch: manifest.leaderEpoch,
          previousCheckpoint: previous?.manifest.checkpoint,
          previousLeaderEpoch: previous?.manifest.leaderEpoch,
        },
      });
    if (previous) {
      if (manifest.checkpoint <= previous.manifest.checkpoint) throw conflict(`checkpoint ${previous.manifest.checkpoint} is already committed`);
      if (manifest.leaderEpoch < previous.manifest.leaderEpoch) {
        throw conflict(`leader epoch ${manifest.leaderEpoch} is older than ${previous.manifest.leaderEpoch}`);
      }
    }
    const data = encoder.encode(JSON.stringify(manifest));
    try {
      return previous ? await this.kv.update(manifest.job, data, previous.revision) : await this.kv.create(manifest.job, data);
    } catch (err) {
      if (isWrongLastSequence(err)) throw conflict('another manifest was committed first');
      throw translateNatsError(err, `cannot commit checkpoint ${manifest.checkpoint} of job "${manifest.job}"`);
    }
  }
}

function decode(bytes: Uint8Array): CheckpointManifest {
  return JSON.parse(decoder.decode(bytes)) as CheckpointManifest;
}
