/**
 * The end of a stage's chain: encodes each record and routes it to its
 * subject — the partition of its key in a millrace stream (after re-keying,
 * for a keyBy), or a user subject of a JetStream sink.
 */
import { partitionOf } from '../wire/partitioner.js';
import { partitionSubjects } from '../wire/subjects.js';
import { encodeMsgpack, encoderFor } from '../wire/codec.js';
import type { StageOutput } from '../plan/compile.js';
import { userError } from './chain.js';

/** Publishes one encoded record under a deterministic message id. */
export type RoutedPublish = (subject: string, data: Uint8Array, key: string, timestamp: number) => void;

/**
 * @param partitions partition count of the output stream (resolved at start; unused for JetStream sinks)
 */
export function router(output: StageOutput, partitions: number, publish: RoutedPublish) {
  if (output.kind === 'jetstream') {
    const { subject, format } = output.sink;
    const encode = encoderFor(format);
    return (value: unknown, key: string, ts: number) => {
      let target: string;
      try {
        target = typeof subject === 'string' ? subject : subject(value, key);
      } catch (err) {
        throw userError('sink subject', err);
      }
      publish(target, encode(value), key, ts);
    };
  }
  const subjects = partitionSubjects(output.stream, partitions);
  const rekey = output.rekey;
  if (!rekey) {
    return (value: unknown, key: string, ts: number) => publish(subjects[partitionOf(key, partitions)]!, encodeMsgpack(value), key, ts);
  }
  return (value: unknown, _key: string, ts: number) => {
    let key: string;
    try {
      key = rekey.fn(value);
      if (typeof key !== 'string') throw new TypeError(`keyBy returned ${typeof key}, not a string`);
    } catch (err) {
      throw userError(rekey.name, err);
    }
    publish(subjects[partitionOf(key, partitions)]!, encodeMsgpack(value), key, ts);
  };
}
