/**
 * (b) The protocol ceiling: the naive loop with everything nats.js adds per
 * message taken out. Outputs are raw `nc.publish()`es with a reply under one
 * wildcard inbox (PubAcks parsed and checked, 8192 outstanding); the input
 * consumer is AckPolicy.All, acking the last message of each batch of 1000
 * once every earlier output is acknowledged.
 */
import { pack, unpack } from 'msgpackr';
import { AckPolicy, connect, headers, type JsMsg } from 'nats';
import { EVENT_TIME_HEADER, KEY_HEADER, MSG_ID_HEADER } from '../../runtime/wire/headers.js';
import { partitionOf } from '../../runtime/wire/partitioner.js';
import type { BenchEvent } from '../events.js';
import { expectedCounts } from '../events.js';
import { RawPublisher } from '../raw-publisher.js';
import type { BenchContext, Scenario, ScenarioResult } from '../scenario.js';
import { partitionSubjects } from '../streams.js';
import { verifyCountPipe } from '../verify.js';

const WINDOW = 8192;
const ACK_BATCH = 1000;

export const scenario: Scenario = {
  id: 'b',
  title: 'protocol ceiling: raw nc.publish + inbox, AckAll per 1000',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const expected = expectedCounts(ctx.events);
    const nc = await connect({ servers: ctx.natsUrl, noAsyncTraces: true });
    try {
      const jsm = await nc.jetstreamManager();
      const js = nc.jetstream();
      const durable = `ceiling_${ctx.runId}`;
      await jsm.consumers.add(ctx.inputStream, { durable_name: durable, ack_policy: AckPolicy.All, max_ack_pending: 20_000 });
      const outSubjects = partitionSubjects(ctx.outputStream, ctx.partitions);
      const counts = new Map<string, number>();

      // Batch b is acked (AckAll: its last message) once it is closed and it and every earlier batch have no PubAck outstanding.
      const batches = Math.ceil(ctx.events / ACK_BATCH);
      const outstanding = new Int32Array(batches);
      const lastOfBatch: (JsMsg | undefined)[] = new Array(batches);
      let nextToAck = 0;
      let finished!: () => void;
      const allAcked = new Promise<void>((resolve) => (finished = resolve));
      const advance = () => {
        while (nextToAck < batches && outstanding[nextToAck] === 0 && lastOfBatch[nextToAck] !== undefined) {
          lastOfBatch[nextToAck]!.ack();
          lastOfBatch[nextToAck++] = undefined;
        }
        if (nextToAck === batches) finished();
      };
      const pub = new RawPublisher(nc, WINDOW, (b) => {
        if (--outstanding[b]! === 0) advance();
      });

      const consumer = await js.consumers.get(ctx.inputStream, durable);
      ctx.timer.start();
      const messages = await consumer.consume({ max_messages: 1000 });
      let received = 0;
      for await (const m of messages) {
        const e = unpack(m.data) as BenchEvent;
        const count = (counts.get(e.userId) ?? 0) + 1;
        counts.set(e.userId, count);
        const h = headers();
        h.set(KEY_HEADER, e.userId);
        h.set(EVENT_TIME_HEADER, String(e.ts));
        h.set(MSG_ID_HEADER, `o-${m.seq}`);
        const wait = pub.ready();
        if (wait) await wait;
        const b = Math.floor(received / ACK_BATCH);
        outstanding[b]!++;
        pub.publish(outSubjects[partitionOf(e.userId, ctx.partitions)]!, pack({ userId: e.userId, count, id: e.id }), h, b);
        received++;
        if (received % ACK_BATCH === 0 || received === ctx.events) {
          lastOfBatch[b] = m;
          advance();
        }
        if (received === ctx.events) break;
      }
      if (received !== ctx.events) throw new Error(`consume() ended after ${received} of ${ctx.events} events`);
      await pub.drain();
      await allAcked;
      await nc.flush();
      const seconds = ctx.timer.stop();
      pub.close();
      // Leaving the for-await stopped the consumer; its close() would wait for another iteration, so it is not called.

      const verified = await verifyCountPipe(js, jsm, ctx, durable, expected, counts);
      return { events: received, seconds, verified };
    } finally {
      await nc.close();
    }
  },
};
