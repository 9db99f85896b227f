/** Reads a whole JetStream stream, first message to last, with an ordered consumer. */
import type { JsMsg, NatsConnection } from 'nats';

/**
 * Calls `onMessage` for every message of `stream` in stream order, up to the
 * last sequence the stream had when the read began; resolves with the number
 * read. Rejects after `timeoutMs`.
 */
export async function readStream(nc: NatsConnection, stream: string, onMessage: (msg: JsMsg) => void, timeoutMs = 120_000): Promise<number> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(stream);
  if (state.messages === 0) return 0;
  const lastSeq = state.last_seq;
  // An ordered consumer starts at the first message by default (see count-data.ts about deliver_policy).
  const consumer = await nc.jetstream().consumers.get(stream);
  const messages = await consumer.consume({ max_messages: 5_000 });
  let read = 0;
  let lastRead = 0;
  const timer = setTimeout(() => messages.stop(), timeoutMs);
  try {
    for await (const msg of messages) {
      onMessage(msg);
      read++;
      lastRead = msg.seq;
      if (msg.seq >= lastSeq) break;
    }
  } finally {
    clearTimeout(timer);
    messages.stop();
  }
  if (lastRead < lastSeq) throw new Error(`reading stream ${stream} stopped at seq ${lastRead} of ${lastSeq} (${read} messages) after ${timeoutMs} ms`);
  return read;
}
