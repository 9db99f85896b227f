/** Reads a whole JetStream stream, first message to last, with an ordered consumer. */
import type { JsMsg, NatsConnection } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';

/** Attempts at the requests that set up a read, one second apart: a nats-server busy recovering may time them out. */
const SETUP_ATTEMPTS = 5;

/**
 * Calls `onMessage` for every message of `stream` in stream order, up to the
 * last sequence the stream had when the read began; resolves with the number
 * read. Rejects after `timeoutMs`.
 */
export async function readStream(nc: NatsConnection, stream: string, onMessage: (msg: JsMsg) => void, timeoutMs = 300_000): Promise<number> {
  const jsm = await retry(() => nc.jetstreamManager());
  const { state } = await retry(() => jsm.streams.info(stream));
  if (state.messages === 0) return 0;
  const lastSeq = state.last_seq;
  // An ordered consumer starts at the first message by default (see count-data.ts about deliver_policy).
  const messages = await retry(async () => (await nc.jetstream().consumers.get(stream)).consume({ max_messages: 5_000 }));
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

async function retry<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n >= SETUP_ATTEMPTS) throw err;
      await sleep(1_000);
    }
  }
}
