/**
 * The Publisher keeps its publishes in order across a nats-server crash: the
 * stream ends up holding every message once, in the order it was published,
 * although the server died with PubAcks outstanding and the publisher kept
 * publishing while it was down and after it came back.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from 'nats';
import { connectNats } from '../../cluster/transport/connection.js';
import { Publisher, recordHeaders } from '../../cluster/transport/publisher.js';
import { setupNats, type NatsFixture } from '../helpers/nats.js';

let nats: NatsFixture;
let nc: NatsConnection;

test.before(async () => {
  nats = await setupNats();
  nc = await connectNats({ servers: [nats.url], name: 'publisher-order-test' });
});

test.after.always(async () => {
  await nc?.close();
  await nats?.cleanup();
});

const encoder = new TextEncoder();

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

async function nextStatus(connection: NatsConnection, type: string): Promise<void> {
  for await (const s of connection.status()) if (s.type === type) return;
}
const decoder = new TextDecoder();

/** Reads the whole stream back in stream order (an ordered consumer), as the numbers that were published. */
async function readBack(stream: string): Promise<number[]> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(stream);
  const consumer = await nc.jetstream().consumers.get(stream);
  const numbers: number[] = [];
  const messages = await consumer.consume();
  for await (const m of messages) {
    numbers.push(Number(decoder.decode(m.data)));
    if (m.seq >= state.last_seq) break;
  }
  return numbers;
}

test('a nats-server SIGKILL mid-flight neither loses, duplicates nor reorders publishes', async (t) => {
  const stream = nats.unique('ORDER');
  const subject = `${stream}.p`;
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });

  const publisher = new Publisher(nc, { window: 8192 });
  const publish = (n: number) => publisher.publish(subject, encoder.encode(String(n)), recordHeaders(), `m-${n}`);
  const total = 40_000;
  let published = 0;
  let killed = false;
  while (published < total) {
    await publisher.capacity();
    for (let i = 0; i < 200; i++) publish(published++);
    await sleep(10);
    if (!killed && published >= total / 5) {
      killed = true;
      // Thousands in flight when the server dies: handed to the socket, not yet stored.
      for (let i = 0; i < 3000; i++) publish(published++);
      await nextTurn();
      await nextTurn();
      t.true(publisher.outstanding > 0, 'publishes were in flight at the crash');
      const reconnected = nextStatus(nc, 'reconnect');
      await nats.restart('SIGKILL');
      // As upstream of a task would be: nothing new until the connection is back,
      // then publishing goes on for seconds, well past the PubAck timeout.
      await reconnected;
    }
  }
  await publisher.flushed();
  publisher.close();

  const stored = await readBack(stream);
  t.is(stored.length, total, 'every publish stored exactly once');
  const firstOutOfOrder = stored.findIndex((n, i) => n !== i);
  t.is(firstOutOfOrder, -1, firstOutOfOrder < 0 ? '' : `stream position ${firstOutOfOrder + 1} holds message ${stored[firstOutOfOrder]}`);
});
