/**
 * Writes example transactions as JSON to the plain JetStream stream
 * TRANSACTIONS (subjects `transactions.<userId>`), the way an existing
 * system would, with deterministic content for a given seed.
 */
import { headers, RetentionPolicy, StorageType, type NatsConnection } from 'nats';
import { USERS, type Transaction } from './model.js';
import { INPUT_STREAM } from './job.js';

const MERCHANTS = ['Amazon', 'BestBuy', 'Starbucks', 'Apple', 'Netflix', 'Tesla', 'Ikea', 'Uber'];
const encoder = new TextEncoder();

/** A deterministic pseudo-random generator (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Transaction `i` of run `runId`: amounts spread so that every risk class occurs. */
export function transactions(count: number, runId: string, seed = 42, start = Date.now()): Transaction[] {
  const next = random(seed);
  const users = [...Object.keys(USERS), 'zoe'];
  return Array.from({ length: count }, (_, i) => ({
    transactionId: `${runId}-${i}`,
    userId: users[Math.floor(next() * users.length)]!,
    amount: Math.round(next() ** 3 * 500_000) / 100,
    merchant: MERCHANTS[Math.floor(next() * MERCHANTS.length)]!,
    timestamp: start + i,
  }));
}

/** Creates stream TRANSACTIONS unless it exists, with `replicas` copies in a NATS cluster (default 1). */
export async function ensureTransactionStream(nc: NatsConnection, options: { replicas?: number } = {}): Promise<void> {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info(INPUT_STREAM);
  } catch {
    await jsm.streams.add({
      name: INPUT_STREAM,
      subjects: ['transactions.>'],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: options.replicas ?? 1,
    });
  }
}

/** Publishes `txs` with their id as Nats-Msg-Id, awaiting the PubAcks in batches. */
export async function publishTransactions(nc: NatsConnection, txs: readonly Transaction[]): Promise<void> {
  const js = nc.jetstream();
  const batch = 500;
  for (let i = 0; i < txs.length; i += batch) {
    await Promise.all(
      txs.slice(i, i + batch).map((t) => {
        const h = headers();
        return js.publish(`transactions.${t.userId}`, encoder.encode(JSON.stringify(t)), { msgID: t.transactionId, headers: h });
      }),
    );
  }
}
