/**
 * The benchmark input: deterministic card-payment events from a seed, so a
 * verifier can recompute what the stream holds without reading it.
 */

export const BENCH_SEED = 0x5eed_2026;
export const BENCH_USERS = 100_000;
/** Event time of event 0; event i has `ts = BENCH_BASE_TS + i`. */
export const BENCH_BASE_TS = Date.UTC(2026, 0, 1);

export const MERCHANTS: readonly string[] = [
  'acme', 'bakery-blanc', 'bookworm', 'cafe-noir', 'cinema-lux', 'city-parking', 'corner-shop', 'daily-news',
  'deli-roma', 'electro-hub', 'fastfuel', 'fit-club', 'florist-rose', 'fresh-market', 'gadget-store', 'game-zone',
  'garden-center', 'gift-box', 'green-grocer', 'hardware-plus', 'hotel-vista', 'ice-cream-co', 'jewel-box',
  'kids-corner', 'laundry-24', 'library-cafe', 'metro-transit', 'music-hall', 'noodle-bar', 'office-supply',
  'optician', 'pet-palace', 'pharmacy-one', 'pizza-napoli', 'post-office', 'quick-taxi', 'record-shop',
  'salon-chic', 'shoe-box', 'sports-direct', 'streaming-tv', 'sushi-go', 'tea-house', 'tech-repair', 'toy-town',
  'travel-agent', 'urban-wear', 'vinyl-vault', 'wine-cellar', 'zoo-tickets',
];
const CURRENCIES = ['EUR', 'USD', 'GBP'] as const;

export interface BenchEvent {
  id: number;
  userId: string;
  /** 1.00 .. 1000.00, two decimals. */
  amount: number;
  merchant: string;
  currency: (typeof CURRENCIES)[number];
  ts: number;
}

/** A 32-bit LCG (Numerical Recipes constants); draws use the high bits, whose period is long. */
function lcg(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 0x1_0000_0000) * n);
  };
}

/** The first `n` events of the sequence for `seed`. */
export function* generateEvents(n: number, seed = BENCH_SEED): Generator<BenchEvent> {
  const draw = lcg(seed);
  for (let i = 0; i < n; i++) {
    const userId = 'u' + draw(BENCH_USERS);
    const amount = (100 + draw(99_901)) / 100;
    const merchant = MERCHANTS[draw(MERCHANTS.length)]!;
    const currency = CURRENCIES[draw(CURRENCIES.length)]!;
    yield { id: i, userId, amount, merchant, currency, ts: BENCH_BASE_TS + i };
  }
}

/** Events per userId among the first `n` events: the independent reference for keyed counts. */
export function expectedCounts(n: number, seed = BENCH_SEED): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of generateEvents(n, seed)) counts.set(e.userId, (counts.get(e.userId) ?? 0) + 1);
  return counts;
}

/** Events `first` .. `first + n - 1`, event i on its own key `k<i>`: `n` distinct keys. */
export function* distinctKeyEvents(n: number, first = 0): Generator<BenchEvent> {
  for (let i = first; i < first + n; i++) yield keyEvent(i, `k${i}`);
}

/** A deterministic event `id` for key `userId`. */
export function keyEvent(id: number, userId: string): BenchEvent {
  return {
    id,
    userId,
    amount: 1 + (id % 99_900) / 100,
    merchant: MERCHANTS[id % MERCHANTS.length]!,
    currency: CURRENCIES[id % CURRENCIES.length]!,
    ts: BENCH_BASE_TS + id,
  };
}
