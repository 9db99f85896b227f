/**
 * (a) The naive loop: what a user writes with nats.js defaults. A durable pull
 * consumer read with `consume()`, a count per key in a Map, one
 * `js.publish()` per input (with `msgID`), each input acked after its
 * output's PubAck, at most 1024 outputs in flight.
 */
import { pack, unpack } from 'msgpackr';
import { AckPolicy, connect, headers, type JsMsg } from 'nats';
import { EVENT_TIME_HEADER, KEY_HEADER } from '../../runtime/wire/headers.js';
import { partitionOf } from '../../runtime/wire/partitioner.js';
import type { BenchEvent } from '../events.js';
import { expectedCounts } from '../events.js';
import type { BenchContext, Scenario, ScenarioResult } from '../scenario.js';
import { partitionSubjects } from '../streams.js';
import { verifyCountPipe } from '../verify.js';

const IN_FLIGHT = 1024;

export const scenario: Scenario = {
  id: 'a',
  title: 'naive loop: consume() + js.publish(), default client',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const expected = expectedCounts(ctx.events);
    const nc = await connect({ servers: ctx.natsUrl });
    try {
      const jsm = await nc.jetstreamManager();
      const js = nc.jetstream();
      const durable = `naive_${ctx.runId}`;
      await jsm.consumers.add(ctx.inputStream, { durable_name: durable, ack_policy: AckPolicy.Explicit, max_ack_pending: 20_000 });
      const outSubjects = partitionSubjects(ctx.outputStream, ctx.partitions);
      const counts = new Map<string, number>();

      let inFlight = 0;
      let acked = 0;
      let failure: unknown;
      let slotFree: (() => void) | undefined;
      let finished!: () => void;
      let failed!: (e: unknown) => void;
      const done = new Promise<void>((resolve, reject) => {
        finished = resolve;
        failed = reject;
      });
      done.catch(() => {}); // awaited below; a failure before then must not count as unhandled
      const onPublished = (m: JsMsg) => {
        m.ack();
        inFlight--;
        if (++acked === ctx.events) finished();
        slotFree?.();
        slotFree = undefined;
      };
      const onFailed = (e: unknown) => {
        failure ??= e;
        failed(e);
        slotFree?.();
      };

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
        while (inFlight >= IN_FLIGHT && failure === undefined) await new Promise<void>((r) => (slotFree = r));
        if (failure !== undefined) break;
        inFlight++;
        js.publish(outSubjects[partitionOf(e.userId, ctx.partitions)]!, pack({ userId: e.userId, count, id: e.id }), {
          msgID: `o-${m.seq}`,
          headers: h,
        }).then(() => onPublished(m), onFailed);
        if (++received === ctx.events) break;
      }
      if (received !== ctx.events && failure === undefined) throw new Error(`consume() ended after ${received} of ${ctx.events} events`);
      await done;
      await nc.flush();
      const seconds = ctx.timer.stop();
      // Leaving the for-await stopped the consumer; its close() would wait for another iteration, so it is not called.

      const verified = await verifyCountPipe(js, jsm, ctx, durable, expected, counts);
      return { events: received, seconds, verified };
    } finally {
      await nc.close();
    }
  },
};
