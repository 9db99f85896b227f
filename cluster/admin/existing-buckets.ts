/**
 * The buckets an operator command reads, opened only if they exist: the
 * command line must not create a cluster's buckets with its own settings
 * (`js.views.kv` creates an absent bucket from the options it is given, so a
 * status query would make `millrace_members` without its TTL, or a bucket
 * with one copy on a replicated cluster). Absent means: no node has run yet.
 */
import type { JetStreamClient, JetStreamManager, KV } from 'nats';
import { isStreamNotFound, translateNatsError } from '../transport/nats-errors.js';

/** Whether KV bucket `bucket` exists. */
export async function bucketExists(jsm: JetStreamManager, bucket: string): Promise<boolean> {
  try {
    await jsm.streams.info(`KV_${bucket}`);
    return true;
  } catch (err) {
    if (isStreamNotFound(err)) return false;
    throw translateNatsError(err, `cannot look up bucket "${bucket}"`);
  }
}

/** Binds to KV bucket `bucket` without creating it; undefined when it does not exist. */
export async function existingKv(js: JetStreamClient, jsm: JetStreamManager, bucket: string): Promise<KV | undefined> {
  if (!(await bucketExists(jsm, bucket))) return undefined;
  try {
    return await js.views.kv(bucket, { bindOnly: true });
  } catch (err) {
    throw translateNatsError(err, `cannot open bucket "${bucket}"`);
  }
}

/**
 * Every key of `kv`, read to the end before the caller reads any value:
 * nats.js ends a `keys()` iteration once the server has sent the last key,
 * dropping the keys not yet taken, so a loop that awaits a `get` per key
 * sees only the first.
 */
export async function keysOf(kv: KV, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  try {
    for await (const key of await kv.keys()) keys.push(key);
  } catch (err) {
    throw translateNatsError(err, `cannot list the keys of bucket "${bucket}"`);
  }
  return keys.sort();
}
