/** Reads a whole JetStream stream, first message to last, with an ordered consumer. */
import type { JsMsg, NatsConnection } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';

/** Attempts at the requests that set up a read, one second apart: a nats-server busy recovering may time them out. */
const SETUP_ATTEMPTS = 5;

export interface ReadOptions {
  /** The first stream sequence to read. @default 1 */
  readonly fromSeq?: number;
  /** @default 300000 */
  readonly timeoutMs?: number;
}

/**
 * Calls `onMessage` for every message of `stream` in stream order, from
 * `fromSeq` up to the last sequence the stream had when the read began;
 * resolves with the number read and that last sequence. Rejects after
 * `timeoutMs`.
 */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  onMessage: (msg: JsMsg) => void,
  { fromSeq = 1, timeoutMs = 300_000 }: ReadOptions = {},
): Promise<{ read: number; lastSeq: number }> {
  const jsm = await retry(() => nc.jetstreamManager());
  const { state } = await retry(() => jsm.streams.info(stream));
  const lastSeq = state.last_seq;
  if (state.messages === 0 || lastSeq < fromSeq) return { read: 0, lastSeq };
  // An ordered consumer starts at the first message unless told a start sequence (see count-data.ts about deliver_policy).
  const start = fromSeq > 1 ? { opt_start_seq: fromSeq } : undefined;
  const messages = await retry(async () => (await nc.jetstream().consumers.get(stream, start)).consume({ max_messages: 5_000 }));
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
  return { read, lastSeq };
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
