/**
 * Millrace streams on JetStream (docs/wire-format.md): stream NAME has the
 * explicit subjects `mr.NAME.0` … `mr.NAME.<P-1>`, P fixed at creation and
 * recorded in the description (nats-server 2.9 has no stream metadata).
 *
 * nats-server 2.9 accepts and silently drops config fields it does not know,
 * so every create checks the config the server returns.
 */
import { RetentionPolicy, StorageType, type JetStreamManager, type StreamInfo } from 'nats';
import { ErrorCodes, millraceError } from '../../errors.js';
import { isStreamNotFound, translateNatsError } from './nats-errors.js';
import { partitionSubject, partitionSubjects } from '../../runtime/wire/subjects.js';
import { replicasOf, type ReplicasOption } from './replicas.js';

export const MAX_PARTITIONS = 4096;
const DESCRIPTION_PREFIX = 'millrace stream; partitions=';

export interface StreamDescription {
  readonly name: string;
  readonly partitions: number;
  readonly messages: number;
  readonly bytes: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

export { partitionSubject, partitionSubjects };

function checkPartitions(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new TypeError(`partitions must be an integer in 1..${MAX_PARTITIONS}, got ${partitions}`);
  }
}

function describe(info: StreamInfo): StreamDescription {
  const description = info.config.description ?? '';
  const partitions = Number(description.startsWith(DESCRIPTION_PREFIX) ? description.slice(DESCRIPTION_PREFIX.length) : NaN);
  const expected = Number.isInteger(partitions) ? partitionSubjects(info.config.name, partitions) : [];
  const subjects = info.config.subjects ?? [];
  if (expected.length === 0 || subjects.length !== expected.length || subjects.some((s, i) => s !== expected[i])) {
    throw millraceError(
      ErrorCodes.STREAM_NOT_PARTITIONED,
      `JetStream stream "${info.config.name}" is not a millrace stream (subjects ${JSON.stringify(subjects)}); ` +
        `read it with source.jetstream() instead`,
      { details: { stream: info.config.name } },
    );
  }
  return {
    name: info.config.name,
    partitions,
    messages: info.state.messages,
    bytes: info.state.bytes,
    firstSeq: info.state.first_seq,
    lastSeq: info.state.last_seq,
  };
}

/** Describes millrace stream `name`, or `undefined` when it does not exist. */
export async function describeStream(jsm: JetStreamManager, name: string): Promise<StreamDescription | undefined> {
  try {
    return describe(await jsm.streams.info(name));
  } catch (err) {
    if (isStreamNotFound(err)) return undefined;
    throw translateNatsError(err, `cannot describe stream "${name}"`);
  }
}

export interface CreateStreamOptions extends ReplicasOption {
  /** @default 16 */
  partitions?: number;
  /** Keep at most this many bytes (oldest dropped first). @default unlimited */
  maxBytes?: number;
  /** Keep messages at most this long, in ms. @default unlimited */
  maxAgeMs?: number;
}

/**
 * Creates millrace stream `name`, or returns it when it exists with the same
 * partition count (MR_STREAM_CONFLICT when the count differs). An existing
 * stream keeps its replica count, whatever `replicas` says.
 */
export async function createStream(jsm: JetStreamManager, name: string, options: CreateStreamOptions = {}): Promise<StreamDescription> {
  const partitions = options.partitions ?? 16;
  checkPartitions(partitions);
  const replicas = replicasOf(options.replicas);
  const existing = await describeStream(jsm, name);
  if (existing) {
    if (existing.partitions !== partitions) {
      throw millraceError(
        ErrorCodes.STREAM_CONFLICT,
        `stream "${name}" exists with ${existing.partitions} partitions, not ${partitions}; partitions are fixed at creation`,
        { details: { stream: name, existing: existing.partitions, requested: partitions } },
      );
    }
    return existing;
  }
  const subjects = partitionSubjects(name, partitions);
  let info: StreamInfo;
  try {
    info = await jsm.streams.add({
      name,
      subjects,
      description: `${DESCRIPTION_PREFIX}${partitions}`,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      max_bytes: options.maxBytes ?? -1,
      max_age: options.maxAgeMs ? options.maxAgeMs * 1_000_000 : 0,
    });
  } catch (err) {
    throw translateNatsError(err, `cannot create stream "${name}"`);
  }
  const returned = info.config;
  if (returned.subjects?.length !== partitions || returned.description !== `${DESCRIPTION_PREFIX}${partitions}`) {
    throw millraceError(ErrorCodes.SERVER_IGNORED_CONFIG, `the server changed the config of stream "${name}" on creation`, {
      details: { stream: name, subjects: returned.subjects, description: returned.description },
    });
  }
  return describe(info);
}

/** Deletes stream `name`; `false` when it did not exist. */
export async function deleteStream(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    return await jsm.streams.delete(name);
  } catch (err) {
    if (isStreamNotFound(err)) return false;
    throw translateNatsError(err, `cannot delete stream "${name}"`);
  }
}
