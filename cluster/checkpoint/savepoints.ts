/**
 * Savepoints: committed checkpoints a user keeps by name (Flink's
 * savepoints), to restart a job from later — after a code change, to rewind
 * it, or to move it. A savepoint is a copy of a checkpoint's manifest in the
 * KV bucket `millrace_savepoints`; the snapshots it names are kept by the
 * coordinator's garbage collection as long as the savepoint exists.
 *
 * - `create` (through the coordinator, see cluster-coordinator.ts) takes a
 *   checkpoint now and stores its manifest under the name.
 * - `restore` commits the savepoint's manifest as the job's next checkpoint,
 *   marked `restoredFrom`: the next run of the job starts from it, every
 *   task from the snapshot store, and the sink outputs staged in it are not
 *   published again (they were when its checkpoint first committed).
 *
 * State compatibility rules are in docs/savepoints.md.
 */
import type { JetStreamClient, KV } from 'nats';
import { ErrorCodes, millraceError } from '../../errors.js';
import { translateNatsError } from '../transport/nats-errors.js';
import { replicasOf, type ReplicasOption } from '../transport/replicas.js';
import type { CheckpointManifest, ManifestStore } from './manifest-store.js';

export interface Savepoint {
  readonly job: string;
  readonly name: string;
  /** ms since the epoch */
  readonly createdAt: number;
  readonly manifest: CheckpointManifest;
}

export const DEFAULT_SAVEPOINT_BUCKET = 'millrace_savepoints';
/** What a savepoint may be called: it becomes part of a KV key. */
export const SAVEPOINT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface SavepointStoreOptions extends ReplicasOption {
  /** @default {@link DEFAULT_SAVEPOINT_BUCKET} (`'millrace_savepoints'`) */
  readonly bucket?: string;
}

export class SavepointStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the savepoint bucket, creating it (with `options.replicas` copies) when it does not exist. */
  static async open(js: JetStreamClient, options: SavepointStoreOptions = {}): Promise<SavepointStore> {
    const bucket = options.bucket ?? DEFAULT_SAVEPOINT_BUCKET;
    const replicas = replicasOf(options.replicas);
    try {
      return new SavepointStore(await js.views.kv(bucket, { history: 1, replicas }));
    } catch (err) {
      throw translateNatsError(err, `cannot open savepoint bucket "${bucket}"`);
    }
  }

  /** Stores `manifest` as savepoint `name` of its job; refuses a name in use. */
  async create(name: string, manifest: CheckpointManifest): Promise<Savepoint> {
    checkName(name);
    const savepoint: Savepoint = { job: manifest.job, name, createdAt: Date.now(), manifest };
    try {
      await this.kv.create(key(manifest.job, name), encoder.encode(JSON.stringify(savepoint)));
    } catch (err) {
      if ((await this.get(manifest.job, name)) !== undefined) {
        throw millraceError(ErrorCodes.SAVEPOINT_INVALID, `job "${manifest.job}" already has a savepoint "${name}"`, { details: { job: manifest.job, name } });
      }
      throw translateNatsError(err, `cannot store savepoint "${name}" of job "${manifest.job}"`);
    }
    return savepoint;
  }

  async get(job: string, name: string): Promise<Savepoint | undefined> {
    checkName(name);
    const entry = await this.kv.get(key(job, name));
    return entry && entry.operation === 'PUT' ? (JSON.parse(decoder.decode(entry.value)) as Savepoint) : undefined;
  }

  /** The savepoints of `job`, oldest first. */
  async list(job: string): Promise<Savepoint[]> {
    const out: Savepoint[] = [];
    const keys = await this.kv.keys(`${job}.*`);
    for await (const k of keys) {
      const found = await this.get(job, k.slice(job.length + 1));
      if (found) out.push(found);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Deletes a savepoint; its snapshots go with the next garbage collection. Returns whether it existed. */
  async delete(job: string, name: string): Promise<boolean> {
    if (!(await this.get(job, name))) return false;
    await this.kv.purge(key(job, name));
    return true;
  }
}

/**
 * Makes savepoint `name` of `job` the job's next checkpoint. Run it while the
 * job is stopped; a running job restarts from it too (its coordinator's next
 * commit fails, it steps down, and the next run restores the savepoint),
 * replaying what it processed since the savepoint.
 */
export async function restoreSavepoint(savepoints: SavepointStore, manifests: ManifestStore, job: string, name: string): Promise<CheckpointManifest> {
  const savepoint = await savepoints.get(job, name);
  if (!savepoint) throw millraceError(ErrorCodes.SAVEPOINT_INVALID, `job "${job}" has no savepoint "${name}"`, { details: { job, name } });
  const latest = await manifests.latest(job);
  const manifest: CheckpointManifest = {
    ...savepoint.manifest,
    checkpoint: Math.max(latest?.manifest.checkpoint ?? 0, savepoint.manifest.checkpoint) + 1,
    leaderEpoch: Math.max(latest?.manifest.leaderEpoch ?? 0, savepoint.manifest.leaderEpoch),
    completedAt: Date.now(),
    restoredFrom: { savepoint: name, checkpoint: savepoint.manifest.checkpoint },
  };
  await manifests.commit(manifest, latest);
  return manifest;
}

function checkName(name: string): void {
  if (!SAVEPOINT_NAME.test(name)) {
    throw millraceError(ErrorCodes.SAVEPOINT_INVALID, `savepoint name "${name}" must be 1 to 64 letters, digits, "_" or "-"`, { details: { name } });
  }
}

function key(job: string, name: string): string {
  return `${job}.${name}`;
}
