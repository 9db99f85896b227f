/**
 * Reads the input stream back after a run and checks that it holds what the
 * harness meant to publish: every event exactly once and each key's events
 * in seq order. A failure here is the publisher's or the broker's, not the
 * jobs': the harness reports it apart from the checker's verdict on outputs.
 */
import type { NatsConnection } from 'nats';
import type { ChaosEvent } from '../fixtures/chaos-shape.js';
import { MAX_EXAMPLES, type Finding } from './checker.js';
import { readStream } from './stream-reader.js';

export interface InputOrderError {
  readonly key: string;
  readonly seq: number;
  /** The seq of the key stored before it. */
  readonly after: number;
}

export interface InputCheck {
  readonly ok: boolean;
  readonly stored: number;
  /** Events published (and acknowledged) that the stream does not hold. */
  readonly missing: Finding<string>;
  /** Events the stream holds more than once. */
  readonly duplicated: Finding<string>;
  /** Messages that are no event of the run. */
  readonly unknown: Finding<string>;
  /** Events stored after a later event of their key. */
  readonly outOfOrder: Finding<InputOrderError>;
}

const decoder = new TextDecoder();

export async function checkInputStream(nc: NatsConnection, stream: string, events: readonly ChaosEvent[]): Promise<InputCheck> {
  const times = new Uint8Array(events.length);
  const lastSeq = new Map<string, number>();
  const unknown = finding<string>();
  const outOfOrder = finding<InputOrderError>();
  const { read: stored } = await readStream(nc, stream, (msg) => {
    let event: ChaosEvent | undefined;
    try {
      event = JSON.parse(decoder.decode(msg.data)) as ChaosEvent;
    } catch {
      event = undefined;
    }
    const i = typeof event?.id === 'string' ? Number(event.id.slice(1)) : NaN;
    const known = events[i];
    if (!event || !known || known.id !== event.id || known.key !== event.key || known.seq !== event.seq) {
      add(unknown, `seq ${msg.seq}: ${decoder.decode(msg.data).slice(0, 80)}`);
      return;
    }
    if (times[i]! < 255) times[i]++;
    const after = lastSeq.get(event.key) ?? 0;
    if (event.seq <= after) add(outOfOrder, { key: event.key, seq: event.seq, after });
    else lastSeq.set(event.key, event.seq);
  });
  const missing = finding<string>();
  const duplicated = finding<string>();
  for (let i = 0; i < events.length; i++) {
    if (times[i] === 0) add(missing, events[i]!.id);
    else if (times[i]! > 1) add(duplicated, `${events[i]!.id} ×${times[i]}`);
  }
  const ok = missing.count + duplicated.count + unknown.count + outOfOrder.count === 0;
  return { ok, stored, missing, duplicated, unknown, outOfOrder };
}

export function formatInputCheck(c: InputCheck): string {
  const show = <T>(label: string, f: Finding<T>, fmt: (t: T) => string) =>
    `  ${label}: ${f.count}${f.count > 0 ? ` — ${f.examples.slice(0, 5).map(fmt).join('; ')}` : ''}`;
  return [
    `input stream ${c.ok ? 'ok' : 'NOT AS PUBLISHED'}: ${c.stored} messages`,
    show('missing', c.missing, (s) => s),
    show('duplicated', c.duplicated, (s) => s),
    show('unknown', c.unknown, (s) => s),
    show('out of order', c.outOfOrder, (e) => `${e.key} seq ${e.seq} after ${e.after}`),
  ].join('\n');
}

function finding<T>(): { count: number; examples: T[] } {
  return { count: 0, examples: [] };
}

function add<T>(f: { count: number; examples: T[] }, example: T): void {
  f.count++;
  if (f.examples.length < MAX_EXAMPLES) f.examples.push(example);
}
