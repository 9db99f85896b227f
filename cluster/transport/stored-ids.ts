/**
 * Which of a sink task's message ids the streams already hold: how a
 * transactional sink that publishes a committed checkpoint's outputs again
 * (after a crash in the middle of publishing them) finds out how far the
 * first attempt got. JetStream drops a repeated `Nats-Msg-Id` only within
 * the stream's duplicate window (2 minutes by default); a task restored
 * later would store copies if it trusted the window.
 *
 * Within the window nothing is read: the server deduplicates. Past it, the
 * subject's messages stored since `since` are read, headers only, with an
 * ordered consumer.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from 'nats';
import { ErrorCodes, millraceError } from '../../errors.js';
import { MSG_ID_HEADER } from '../../runtime/wire/headers.js';
import { isStreamNotFound, translateNatsError } from './nats-errors.js';

/** A window must cover `since` by this much to be trusted: the node's and the server's clocks, and the time the check takes. */
const WINDOW_MARGIN_MS = 10_000;
/** How long a subject's stream and a stream's duplicate window are reused (a window the user shortens is seen this late). */
const STREAM_INFO_TTL_MS = 30_000;
/** A scan that takes longer fails with a retryable error (the task fails; its next run tries again). */
const SCAN_TIMEOUT_MS = 60_000;

export interface StoredIdsQuery {
  /** The subjects the outputs went to (each is in at most one stream). */
  readonly subjects: readonly string[];
  /** Only ids starting with this are returned. */
  readonly prefix: string;
  /** No message of interest was stored before this (ms since the epoch). */
  readonly since: number;
}

/**
 * Looks up stored ids for the sink tasks of one node. Which stream holds a
 * subject, and that stream's duplicate window, are read once per
 * STREAM_INFO_TTL_MS and shared: every sink task of a restarted job asks
 * about the same subjects at the same moment.
 */
export class StoredIdLookup {
  private readonly streams = new Map<string, Cached<string | undefined>>();
  private readonly windows = new Map<string, Cached<number>>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The ids starting with `prefix` stored at or after `since` under
   * `subjects`, for the streams whose duplicate window no longer covers
   * `since`; under a stream whose window does, none (publishing again is
   * deduplicated by the server).
   */
  async storedIds(query: StoredIdsQuery): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const subject of new Set(query.subjects)) {
      const stream = await this.cached(this.streams, subject, () => streamOf(this.jsm, subject));
      if (!stream) continue;
      const windowMs = await this.cached(this.windows, stream, () => duplicateWindowMs(this.jsm, stream));
      if (this.now() - query.since < windowMs - WINDOW_MARGIN_MS) continue;
      await scan(this.js, this.jsm, stream, subject, query, ids);
    }
    return ids;
  }

  private cached<T>(cache: Map<string, Cached<T>>, key: string, read: () => Promise<T>): Promise<T> {
    const hit = cache.get(key);
    if (hit && this.now() - hit.at < STREAM_INFO_TTL_MS) return hit.value;
    const value = read();
    cache.set(key, { value, at: this.now() });
    value.catch(() => cache.delete(key));
    return value;
  }
}

interface Cached<T> {
  readonly value: Promise<T>;
  readonly at: number;
}

async function streamOf(jsm: JetStreamManager, subject: string): Promise<string | undefined> {
  try {
    return await jsm.streams.find(subject);
  } catch (err) {
    if (isStreamNotFound(err) || /no stream matches subject/i.test((err as Error).message)) return undefined;
    throw translateNatsError(err, `cannot find the stream of subject "${subject}"`);
  }
}

async function duplicateWindowMs(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    // nanoseconds on the wire; 0 means the server default of two minutes
    const ns = (await jsm.streams.info(stream)).config.duplicate_window;
    return ns ? ns / 1e6 : 120_000;
  } catch (err) {
    throw translateNatsError(err, `cannot read the duplicate window of stream "${stream}"`);
  }
}

async function scan(js: JetStreamClient, jsm: JetStreamManager, stream: string, subject: string, query: StoredIdsQuery, ids: Set<string>): Promise<void> {
  let last;
  try {
    last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  } catch (err) {
    // No message under the subject at all (the server answers 404 "no message found").
    if ((err as { code?: string }).code === '404' || /no message found/i.test((err as Error).message)) return;
    throw translateNatsError(err, `cannot read the last message of "${subject}" in stream "${stream}"`);
  }
  if (last.time.getTime() < query.since) return;
  let messages;
  try {
    const consumer = await js.consumers.get(stream, {
      filterSubjects: subject,
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: new Date(query.since).toISOString(),
      headers_only: true,
    });
    messages = await consumer.consume({ max_messages: 1000 });
  } catch (err) {
    throw translateNatsError(err, `cannot read the ids stored under "${subject}" in stream "${stream}"`);
  }
  const timer = setTimeout(() => messages.stop(), SCAN_TIMEOUT_MS);
  let reachedEnd = false;
  try {
    for await (const msg of messages) {
      const id = msg.headers?.get(MSG_ID_HEADER);
      if (id?.startsWith(query.prefix)) ids.add(id);
      if (msg.seq >= last.seq) {
        reachedEnd = true;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    messages.stop();
  }
  if (!reachedEnd) {
    throw millraceError(ErrorCodes.JETSTREAM, `reading the ids stored under "${subject}" in stream "${stream}" did not reach sequence ${last.seq} within ${SCAN_TIMEOUT_MS} ms`, {
      disposition: 'retryable',
      details: { stream, subject, lastSeq: last.seq },
    });
  }
}
