/**
 * The mailbox of a task: a durable pull consumer over one partition subject,
 * (re)created at task start from the position of the checkpoint the task
 * restored, so the checkpoint, not the server, decides where a task resumes.
 * It acknowledges nothing (AckPolicy.None): exactly-once rests on the
 * positions in checkpoint manifests, not on acks, which the server accepts
 * late for messages it already redelivered. Flow control is the pull: the
 * client asks for at most `maxAckPending` messages at a time.
 */
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import { isConsumerNotFound, isStreamNotFound, translateNatsError } from './nats-errors.js';
import { ErrorCodes, millraceError } from '../../errors.js';

export interface PartitionConsumerOptions {
  stream: string;
  /** Durable name, unique per task. */
  durable: string;
  /** Only this subject; all of the stream when undefined. */
  filterSubject: string | undefined;
  /** The first stream sequence to deliver (1 = from the beginning). */
  startSeq: number;
  /** Records pulled ahead of processing at most: the task's in-flight bound. */
  maxAckPending: number;
  /** Messages per pull request. @default 1000 */
  batch?: number;
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
    stop: () => messages.stop(),
  };
}
