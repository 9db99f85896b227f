/**
 * The public harness on the example operator `UserTotals`
 * (examples/transactions/job.ts): 1000 random payments, compared with a
 * brute-force reference built from examples/transactions/model.ts, on the
 * memory backend and on LevelDB, with a snapshot and restore half way.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes } from '../../errors.js';
import { keyed, partitionOf } from '../../index.js';
import { UserTotals } from '../../examples/transactions/job.js';
import { random } from '../../examples/transactions/generator.js';
import { USERS, addToTotal, classify, enrich, type Payment, type UserTotal } from '../../examples/transactions/model.js';
import type { StateBackend } from '../../runtime/state/backend.js';
import { openLevelDbBackend } from '../../runtime/state/leveldb-backend.js';
import { createMemoryBackend, keyedHarness, type EmittedRecord } from '../../testing.js';

const PAYMENTS = 1000;
const START = Date.UTC(2024, 0, 1);

/** Payments as the stage before UserTotals hands them over: enriched and classified, every risk class present. */
function payments(count: number, seed: number): Payment[] {
  const next = random(seed);
  const users = [...Object.keys(USERS), 'zoe'];
  return Array.from({ length: count }, (_, i) =>
    classify(
      enrich({
        id: `p-${i}`,
        user: users[Math.floor(next() * users.length)]!,
        amountUsd: Math.round(100 + next() ** 3 * 500_000) / 100,
        merchant: 'Ikea',
        timestamp: START + i,
      }),
    ),
  );
}

/** The totals of `user` after the first `upTo` payments, recomputed from scratch. */
function referenceTotal(all: readonly Payment[], upTo: number, user: string): UserTotal | undefined {
  return all.slice(0, upTo).filter((p) => p.user === user).reduce<UserTotal | undefined>(addToTotal, undefined);
}

/** What the reference says `user`'s totals are, checked against facts that do not use addToTotal. */
function checkIndependently(t: ExecutionContext, all: readonly Payment[], user: string, total: UserTotal): void {
  const mine = all.filter((p) => p.user === user);
  t.is(total.count, mine.length);
  t.is(total.highRisk, mine.filter((p) => p.risk === 'HIGH_RISK').length);
  t.true(Math.abs(total.total - mine.reduce((s, p) => s + p.amountUsd, 0)) < 0.01 * mine.length);
  t.is(total.lastTransaction, mine.at(-1)!.id);
}

async function run(t: ExecutionContext, openBackend: () => Promise<StateBackend>): Promise<void> {
  const all = payments(PAYMENTS, 7);
  const half = PAYMENTS / 2;
  const [before, after] = [await openBackend(), await openBackend()];
  t.teardown(() => Promise.all([before.close(), after.close()]));

  const first = await keyedHarness(UserTotals, { backend: before, outputPartitions: 4, commitEveryRecords: 64 });
  const emitted: EmittedRecord<UserTotal>[] = [];
  for (const p of all.slice(0, half)) emitted.push(...(await first.process(p, { key: p.user, timestamp: p.timestamp })));
  const snapshot = await first.snapshot();
  await first.close();

  const second = await keyedHarness(UserTotals, { backend: after, restoreFrom: snapshot, outputPartitions: 4, commitEveryRecords: 64 });
  t.teardown(() => second.close());
  emitted.push(...(await second.processAll(all.slice(half).map((p) => ({ value: p, key: p.user, timestamp: p.timestamp })))));

  t.is(emitted.length, PAYMENTS, 'one output per payment');
  const mismatches = emitted.flatMap((out, i) => {
    const p = all[i]!;
    const expected = referenceTotal(all, i + 1, p.user);
    const ok =
      JSON.stringify(out.value) === JSON.stringify(expected) &&
      out.key === p.user &&
      out.timestamp === p.timestamp &&
      out.subject === `mr.harness-output.${partitionOf(p.user, 4)}` &&
      out.msgId === `harness/s0/0:${i + 1}:0`;
    return ok ? [] : [{ i, out, expected }];
  });
  t.deepEqual(mismatches.slice(0, 3), [], `${mismatches.length} outputs differ from the reference`);

  for (const user of new Set(all.map((p) => p.user))) {
    const total = await second.state(user, 'totals');
    t.deepEqual(total, referenceTotal(all, PAYMENTS, user));
    checkIndependently(t, all, user, total);
  }
  // value<UserTotal>() has no default: an unseen user reads as undefined (typed UserTotal by the state API).
  t.is((await second.state('nobody', 'totals')) as UserTotal | undefined, undefined);
}

test('UserTotals matches the reference over 1000 payments, through snapshot and restore (memory backend)', (t) =>
  run(t, async () => createMemoryBackend()));

test('UserTotals matches the reference over 1000 payments, through snapshot and restore (LevelDB backend)', (t) =>
  run(t, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'millrace-harness-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    return openLevelDbBackend(dir);
  }));

test('an operator that throws: the record goes to deadLetters, the harness and the key go on', async (t) => {
  const Picky = keyed({
    name: 'picky',
    state: {},
    onRecord(n: number) {
      if (n < 0) throw new RangeError('negative');
      return n * 2;
    },
  });
  const h = await keyedHarness(Picky);
  t.teardown(() => h.close());
  t.deepEqual(await h.process(-1, { key: 'a' }), []);
  t.deepEqual((await h.process(2, { key: 'a' })).map((r) => r.value), [4]);
  t.deepEqual(h.deadLetters.map((l) => [l.seq, l.error.code, l.operator]), [[1, ErrorCodes.USER_FUNCTION, 'picky']]);
  t.is(h.output.length, 1);
});

test('the harness checks its arguments', async (t) => {
  await t.throwsAsync(keyedHarness({} as typeof UserTotals), { instanceOf: TypeError });
  await t.throwsAsync(keyedHarness(UserTotals, { outputPartitions: 0 }), { instanceOf: TypeError });
  await t.throwsAsync(keyedHarness(UserTotals, { job: 'not a job name' }), { instanceOf: TypeError });
  const h = await keyedHarness(UserTotals);
  const other = keyed({ name: 'other', state: {}, onRecord: () => undefined });
  await t.throwsAsync(keyedHarness(other, { restoreFrom: await h.snapshot() }), { instanceOf: TypeError });
  await t.throwsAsync(h.process({} as Payment, { key: 42 as unknown as string }), { instanceOf: TypeError });
  await t.throwsAsync(h.advanceProcessingTime(-1), { instanceOf: TypeError });
  await h.close();
  await t.throwsAsync(h.state('a', 'totals'), { code: ErrorCodes.NODE_STOPPED });
});
