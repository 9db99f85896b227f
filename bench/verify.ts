/**
 * Checks a scenario runs after its timed window. Each throws with what it
 * found; each returns a few words for `ScenarioResult.verified`.
 */
import { unpack } from 'msgpackr';
import type { JetStreamClient, JetStreamManager } from 'nats';
import { partitionOf } from '../runtime/wire/partitioner.js';

const SETTLE_MS = 5_000;

/**
 * The durable acknowledged everything it sees: ack floor at the last sequence
 * of its stream (or, for a consumer filtered on one subject such as a
 * partition, the last sequence of that subject), nothing pending or
 * unacknowledged. Polls briefly because the server applies acks after
 * `flush()` returns.
 */
export async function verifyConsumerDone(jsm: JetStreamManager, stream: string, durable: string): Promise<string> {
  const filter = (await jsm.consumers.info(stream, durable)).config.filter_subject;
  let last: number;
  if (!filter) {
    last = (await jsm.streams.info(stream)).state.last_seq;
  } else if (!/[*>]/.test(filter)) {
    last = (await jsm.streams.getMessage(stream, { last_by_subj: filter })).seq;
  } else {
    throw new TypeError(`verifyConsumerDone: consumer ${durable} filters on wildcard subject ${filter}`);
  }
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const c = await jsm.consumers.info(stream, durable);
    if (c.ack_floor.stream_seq === last && c.num_ack_pending === 0 && c.num_pending === 0) {
      return `${durable}: ack floor ${last}, 0 pending`;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `consumer ${durable}: ack floor ${c.ack_floor.stream_seq} (want ${last}${filter ? ` = last of ${filter}` : ''}), ` +
          `${c.num_ack_pending} unacked, ${c.num_pending} pending, ${c.num_redelivered} redelivered`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `stream` holds exactly `expected` messages. */
export async function verifyStreamCount(jsm: JetStreamManager, stream: string, expected: number): Promise<string> {
  const messages = (await jsm.streams.info(stream)).state.messages;
  if (messages !== expected) throw new Error(`stream ${stream} has ${messages} messages, expected ${expected}`);
  return `${stream}: ${messages} msgs`;
}

/**
 * Reads all of millrace stream `stream` with an ordered consumer and returns
 * the highest count per key, checking each message sits on its key's
 * partition. `decode` maps a body to `[key, count]`.
 */
export async function readFinalCounts(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  partitions: number,
  decode: (body: unknown) => [string, number] = defaultDecode,
): Promise<Map<string, number>> {
  const total = (await jsm.streams.info(stream)).state.messages;
  const counts = new Map<string, number>();
  if (total === 0) return counts;
  const prefix = `mr.${stream}.`;
  const consumer = await js.consumers.get(stream);
  const messages = await consumer.consume({ max_messages: 5_000 });
  let seen = 0;
  for await (const m of messages) {
    const [key, count] = decode(unpack(m.data));
    const p = Number(m.subject.slice(prefix.length));
    if (p !== partitionOf(key, partitions)) throw new Error(`${m.subject} seq ${m.seq} holds key ${key} of partition ${partitionOf(key, partitions)}`);
    if (count > (counts.get(key) ?? 0)) counts.set(key, count);
    if (++seen === total) break;
  }
  return counts;
}

function defaultDecode(body: unknown): [string, number] {
  const o = body as { userId: string; count: number };
  return [o.userId, o.count];
}

/** `actual` and `expected` hold the same keys with the same counts. */
export function verifyCounts(actual: Map<string, number>, expected: Map<string, number>, what: string): string {
  if (actual.size !== expected.size) throw new Error(`${what}: ${actual.size} keys, expected ${expected.size}`);
  for (const [key, want] of expected) {
    const got = actual.get(key);
    if (got !== want) throw new Error(`${what}: key ${key} has count ${got}, expected ${want}`);
  }
  return `${what}: ${expected.size} keys match`;
}

/**
 * Everything a keyed-count pipe run must satisfy: the durable consumed the
 * whole input, the output stream has one message per input, and the final
 * count per key (in the outputs, and in `state` when given) equals the count
 * recomputed from the generator.
 */
export async function verifyCountPipe(
  js: JetStreamClient,
  jsm: JetStreamManager,
  ctx: { inputStream: string; outputStream: string; partitions: number; events: number },
  durable: string,
  expected: Map<string, number>,
  state?: Map<string, number>,
): Promise<string> {
  const checks = [
    await verifyConsumerDone(jsm, ctx.inputStream, durable),
    await verifyStreamCount(jsm, ctx.outputStream, ctx.events),
    verifyCounts(await readFinalCounts(js, jsm, ctx.outputStream, ctx.partitions), expected, 'output counts'),
  ];
  if (state) checks.push(verifyCounts(state, expected, 'state'));
  return checks.join('; ');
}
