/** LatestOnly runs one step at a time, on the newest value, spaced by its interval. */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { LatestOnly } from '../../cluster/checkpoint/latest-only.js';

test('values offered while a step runs collapse into one run on the newest', async (t) => {
  const ran: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const latest = new LatestOnly<number>(async (n) => {
    ran.push(n);
    if (n === 1) await gate;
  }, 0, (err) => t.fail(String(err)));
  latest.offer(1);
  await sleep(10);
  for (const n of [2, 3, 4]) latest.offer(n);
  await sleep(10);
  t.deepEqual(ran, [1], 'no second run while the first is in progress');
  release();
  await sleep(10);
  t.deepEqual(ran, [1, 4]);
});

test('runs start at least minIntervalMs apart', async (t) => {
  const starts: number[] = [];
  const latest = new LatestOnly<number>(async () => void starts.push(Date.now()), 100, (err) => t.fail(String(err)));
  latest.offer(1);
  await sleep(10);
  latest.offer(2);
  await sleep(150);
  t.is(starts.length, 2);
  t.true(starts[1]! - starts[0]! >= 95, `${starts[1]! - starts[0]!} ms apart`);
});

test('a failed step is reported and later values still run; cancel drops the waiting value', async (t) => {
  const errors: unknown[] = [];
  const ran: number[] = [];
  const latest = new LatestOnly<number>(async (n) => {
    ran.push(n);
    if (n === 1) throw new Error('boom');
  }, 30, (err) => errors.push(err));
  latest.offer(1);
  await sleep(10);
  latest.offer(2);
  await sleep(60);
  t.deepEqual(ran, [1, 2]);
  t.is((errors[0] as Error).message, 'boom');
  latest.offer(3);
  latest.offer(4);
  await sleep(5);
  latest.offer(5);
  latest.cancel();
  await sleep(60);
  t.deepEqual(ran, [1, 2, 4], '3 was replaced by 4 before it ran; 5 waited for the interval and was cancelled');
});
