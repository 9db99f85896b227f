/**
 * Writes the benchmark input once per `npm run bench`: `events` generated
 * events into a fresh millrace stream, in the millrace wire format, with raw
 * publishes and checked PubAcks. The recovery scenario publishes its own
 * input the same way.
 */
import { pack } from 'msgpackr';
import { headers, type NatsConnection } from 'nats';
import { partitionOf } from '../runtime/wire/partitioner.js';
import { EVENT_TIME_HEADER, KEY_HEADER, MSG_ID_HEADER } from '../runtime/wire/headers.js';
import { generateEvents, type BenchEvent } from './events.js';
import { RawPublisher } from './raw-publisher.js';
import { createMillraceStream, partitionSubjects } from './streams.js';

export interface PreloadOptions {
  stream: string;
  partitions: number;
  events: number;
  seed?: number;
}

const PRELOAD_WINDOW = 8192;

/** Creates `stream` and fills it; returns the seconds it took. */
export async function preloadInput(nc: NatsConnection, opts: PreloadOptions): Promise<number> {
  const jsm = await nc.jetstreamManager();
  await createMillraceStream(jsm, opts.stream, opts.partitions);
  const started = performance.now();
  const duplicates = await publishEvents(nc, opts.stream, opts.partitions, generateEvents(opts.events, opts.seed));
  const seconds = (performance.now() - started) / 1000;
  const state = (await jsm.streams.info(opts.stream)).state;
  if (state.messages !== opts.events || state.first_seq !== 1 || duplicates !== 0) {
    throw new Error(`preload of ${opts.stream}: ${state.messages} messages from seq ${state.first_seq}, ${duplicates} duplicates; expected ${opts.events} from 1`);
  }
  return seconds;
}

/**
 * Publishes `events` to millrace stream `stream`, each on its key's
 * partition with message id `bench:<id>`; resolves once all are
 * acknowledged, with the number the stream reported as duplicates.
 */
export async function publishEvents(nc: NatsConnection, stream: string, partitions: number, events: Iterable<BenchEvent>): Promise<number> {
  const subjects = partitionSubjects(stream, partitions);
  const pub = new RawPublisher(nc, PRELOAD_WINDOW, () => {});
  try {
    for (const e of events) {
      const h = headers();
      h.set(KEY_HEADER, e.userId);
      h.set(EVENT_TIME_HEADER, String(e.ts));
      h.set(MSG_ID_HEADER, `bench:${e.id}`);
      const wait = pub.ready();
      if (wait) await wait;
      pub.publish(subjects[partitionOf(e.userId, partitions)]!, pack(e), h, e.id);
    }
    await pub.drain();
    return pub.duplicates;
  } finally {
    pub.close();
  }
}
