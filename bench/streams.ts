/**
 * Millrace streams as the benchmark sees them (docs/wire-format.md): a
 * JetStream stream NAME, file storage, subjects `mr.NAME.0` .. `mr.NAME.<P-1>`.
 */
import { StorageType, type JetStreamManager } from 'nats';

/** Subject of partition `p` of millrace stream `name`. */
export function partitionSubject(name: string, p: number): string {
  return `mr.${name}.${p}`;
}

/** The `partitions` subjects of stream `name`, in partition order. */
export function partitionSubjects(name: string, partitions: number): string[] {
  return Array.from({ length: partitions }, (_, p) => partitionSubject(name, p));
}

/** Creates millrace stream `name`; fails if the server did not keep the subjects. */
export async function createMillraceStream(jsm: JetStreamManager, name: string, partitions: number): Promise<void> {
  const subjects = partitionSubjects(name, partitions);
  const info = await jsm.streams.add({
    name,
    subjects,
    storage: StorageType.File,
    num_replicas: 1,
    description: `millrace stream; partitions=${partitions}`,
  });
  if (info.config.subjects?.join(',') !== subjects.join(',') || info.config.storage !== StorageType.File) {
    throw new Error(`stream ${name} was created with a different config: ${JSON.stringify(info.config)}`);
  }
}

/** Deletes every stream except `keep` (outputs, KV buckets, object stores a run left behind). */
export async function deleteStreamsExcept(jsm: JetStreamManager, keep: string): Promise<string[]> {
  const deleted: string[] = [];
  for await (const name of jsm.streams.names()) {
    if (name === keep) continue;
    await jsm.streams.delete(name);
    deleted.push(name);
  }
  return deleted;
}

/** Deletes every consumer on `stream` (the durables of the last run). */
export async function deleteConsumers(jsm: JetStreamManager, stream: string): Promise<number> {
  const names: string[] = [];
  for await (const c of jsm.consumers.list(stream)) names.push(c.name);
  for (const name of names) await jsm.consumers.delete(stream, name);
  return names.length;
}
