/**
 * The mailbox of a task: a pull consumer over one partition subject,
 * created at task start from the position of the checkpoint the task
 * restored, so the checkpoint, not the server, decides where a task resumes.
 * Its name carries the run's generation, so a node starting a task never
 * touches the consumer of the same task in an older run that another node
 * may still be stopping; a stopped task deletes its consumer, and one left
 * by a killed node is deleted by the server after `inactiveThresholdMs`.
 * It acknowledges nothing (AckPolicy.None): exactly-once rests on the
 * positions in checkpoint manifests, not on acks, which the server accepts
 * late for messages it already redelivered. Flow control is the pull: the
 * client asks for at most `maxAckPending` messages at a time.
 */
import { AckPolicy, DeliverPolicy, nanos, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import { isConsumerNotFound, isStreamNotFound, translateNatsError } from './nats-errors.js';
import { ErrorCodes, millraceError } from '../../errors.js';

export interface PartitionConsumerOptions {
  stream: string;
  /** Durable name, unique per task and run. */
  durable: string;
  /** Only this subject; all of the stream when undefined. */
  filterSubject: string | undefined;
  /** The first stream sequence to deliver (1 = from the beginning). */
  startSeq: number;
  /** Records pulled ahead of processing at most: the task's in-flight bound. */
  maxAckPending: number;
  /** Messages per pull request. @default 1000 */
  batch?: number;
  /** The server deletes the consumer after this long without a pull. @default 60000 */
  inactiveThresholdMs?: number;
}

const DEFAULT_INACTIVE_THRESHOLD_MS = 60_000;

/**
 * The durable name of a task's input consumer: per task, generation and
 * assignment version, so a node never touches a consumer another ownership
 * of the task used (`millrace cluster status` finds a task's lag by it).
 */
export function taskConsumerName(job: string, stage: string, partition: number, generation: number, version: number): string {
  return `${taskConsumerPrefix(job, stage, partition)}${generation}-v${version}`;
}

/** What every consumer name of the task begins with, up to its generation. */
export function taskConsumerPrefix(job: string, stage: string, partition: number | string): string {
  return `mr-${job}-${stage}-${partition}-g`;
}

export interface PartitionConsumer {
  readonly messages: AsyncIterable<JsMsg>;
  /** Ends the iteration of `messages`. */
  stop(): void;
}

export async function openPartitionConsumer(
  js: JetStreamClient,
  jsm: JetStreamManager,
  options: PartitionConsumerOptions,
): Promise<PartitionConsumer> {
  const what = `consumer "${options.durable}" on stream "${options.stream}"`;
  // A task that reopens its input in the same run finds its earlier consumer, unless its stop already deleted it.
  try {
    await jsm.consumers.delete(options.stream, options.durable);
  } catch (err) {
    if (isStreamNotFound(err)) {
      throw millraceError(ErrorCodes.STREAM_NOT_FOUND, `stream "${options.stream}" does not exist`, {
        details: { stream: options.stream },
      });
    }
    if (!isConsumerNotFound(err)) throw translateNatsError(err, `cannot reset ${what}`);
  }
  const start =
    options.startSeq <= 1
      ? { deliver_policy: DeliverPolicy.All }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.startSeq };
  let messages: ConsumerMessages;
  try {
    await jsm.consumers.add(options.stream, {
      durable_name: options.durable,
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(options.inactiveThresholdMs ?? DEFAULT_INACTIVE_THRESHOLD_MS),
      ...(options.filterSubject ? { filter_subject: options.filterSubject } : {}),
      ...start,
    });
    const consumer = await js.consumers.get(options.stream, options.durable);
    messages = await consumer.consume({ max_messages: Math.min(options.batch ?? 1000, options.maxAckPending) });
  } catch (err) {
    throw translateNatsError(err, `cannot open ${what}`);
  }
  return {
    messages,
    stop: () => {
      messages.stop();
      // Best effort: when it fails (server away), the inactive threshold removes the consumer.
      jsm.consumers.delete(options.stream, options.durable).catch(() => undefined);
    },
  };
}
