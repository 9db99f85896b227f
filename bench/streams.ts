/**
 * Millrace streams as the benchmark sees them (docs/wire-format.md): a
 * JetStream stream NAME, file storage, subjects `mr.NAME.0` .. `mr.NAME.<P-1>`.
 */
import type { JetStreamManager } from 'nats';
import { createStream } from '../cluster/transport/streams.js';

export { partitionSubject, partitionSubjects } from '../runtime/wire/subjects.js';

/** Creates millrace stream `name` the way millrace does, checking the config the server returns. */
export async function createMillraceStream(jsm: JetStreamManager, name: string, partitions: number): Promise<void> {
  await createStream(jsm, name, { partitions });
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
