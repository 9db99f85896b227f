/**
 * Keyed state and processing-time timers as an operator sees them, through
 * the public harness (so through the real task, its cache and its commits),
 * each kind also through process → snapshot → restore.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyed, list, map, reducing, value } from '../../index.js';
import type { StateBackend } from '../../runtime/state/backend.js';
import { createMemoryBackend, keyedHarness, type KeyedHarness } from '../../testing.js';

type Cmd =
  | { op: 'set'; v: unknown }
  | { op: 'clear' }
  | { op: 'put'; k: number | string; v: string }
  | { op: 'del'; k: number | string }
  | { op: 'add'; v: number }
  | { op: 'update'; vs: number[] }
  | { op: 'read' };

/** One operator with every kind of state, driven by commands; returns what it reads. */
const Kinds = keyed({
  name: 'kinds',
  state: {
    v: value<unknown>({ default: 'none' }),
    m: map<number | string, string>(),
    l: list<number>(),
    r: reducing<number>((acc, x) => acc + x),
  },
  onRecord(cmd: Cmd, { state }) {
    switch (cmd.op) {
      case 'set':
        state.v.set(cmd.v);
        break;
      case 'clear':
        state.v.clear();
        state.m.clear();
        state.l.clear();
        state.r.clear();
        break;
      case 'put':
        state.m.set(cmd.k, cmd.v);
        break;
      case 'del':
        return { deleted: state.m.delete(cmd.k) };
      case 'add':
        state.l.add(cmd.v);
        state.r.add(cmd.v);
        break;
      case 'update':
        state.l.update(cmd.vs);
        break;
    }
    return { v: state.v.get(), m: [...state.m.entries()], size: state.m.size, l: [...state.l.get()], r: state.r.get() };
  },
});

async function kinds(t: import('ava').ExecutionContext, options?: Parameters<typeof keyedHarness>[1]) {
  const h = await keyedHarness(Kinds, options);
  t.teardown(() => h.close());
  return h;
}

/** Snapshots `h`, closes it and starts a new harness from the snapshot. */
async function restored<In, Out, S extends Record<string, any>>(t: import('ava').ExecutionContext, h: KeyedHarness<In, Out, S>, def: Parameters<typeof keyedHarness<In, Out, S>>[0]) {
  const snapshot = await h.snapshot();
  await h.close();
  const next = await keyedHarness(def, { restoreFrom: snapshot });
  t.teardown(() => next.close());
  return next;
}

test('value state: the default until set, the value after, the default again after clear; survives restore', async (t) => {
  let h = await kinds(t);
  t.is(await h.state('a', 'v'), 'none');
  const [out] = await h.process({ op: 'set', v: { total: 5 } }, { key: 'a' });
  t.deepEqual(out!.value, { v: { total: 5 }, m: [], size: 0, l: [], r: undefined });
  t.deepEqual(await h.state('a', 'v'), { total: 5 });
  t.is(await h.state('b', 'v'), 'none', 'another key has its own');
  h = await restored(t, h, Kinds);
  t.deepEqual(await h.state('a', 'v'), { total: 5 });
  await h.process({ op: 'clear' }, { key: 'a' });
  t.is(await h.state('a', 'v'), 'none');
});

test('an object default is not shared between keys: mutating one key\'s default leaves the others alone', async (t) => {
  const Bags = keyed({
    name: 'bags',
    state: { bag: value({ default: { items: [] as string[] } }) },
    onRecord(item: string, ctx) {
      const bag = ctx.state.bag.get();
      bag.items.push(item);
      if (item !== 'dropped') ctx.state.bag.set(bag);
      return bag.items.length;
    },
  });
  const h = await keyedHarness(Bags);
  t.teardown(() => h.close());
  t.deepEqual((await h.process('x', { key: 'a' })).map((r) => r.value), [1]);
  t.deepEqual((await h.process('dropped', { key: 'b' })).map((r) => r.value), [1], 'b starts from an empty default');
  t.deepEqual((await h.process('y', { key: 'c' })).map((r) => r.value), [1], 'neither a\'s set nor b\'s unsaved change leaked');
  t.deepEqual(await h.state('a', 'bag'), { items: ['x'] });
  t.deepEqual(await h.state('b', 'bag'), { items: [] });
  t.deepEqual(Bags.state.bag.default, { items: [] }, 'the declared default is untouched');
});

test('map state: set, get, has, delete, size, entries; number keys stay numbers through restore', async (t) => {
  let h = await kinds(t);
  await h.process({ op: 'put', k: 1, v: 'one' }, { key: 'a' });
  await h.process({ op: 'put', k: '1', v: 'string one' }, { key: 'a' });
  const [out] = await h.process({ op: 'put', k: 2, v: 'two' }, { key: 'a' });
  const read = out!.value as { m: unknown; size: number };
  t.deepEqual(read.m, [[1, 'one'], ['1', 'string one'], [2, 'two']]);
  t.is(read.size, 3);
  h = await restored(t, h, Kinds);
  const m = await h.state('a', 'm');
  t.deepEqual([...m], [[1, 'one'], ['1', 'string one'], [2, 'two']]);
  t.is(m.get(1), 'one', 'number key 1 and string key "1" are different keys');
  t.deepEqual((await h.process({ op: 'del', k: 1 }, { key: 'a' }))[0]!.value, { deleted: true });
  t.deepEqual((await h.process({ op: 'del', k: 9 }, { key: 'a' }))[0]!.value, { deleted: false });
  t.deepEqual([...(await h.state('a', 'm'))], [['1', 'string one'], [2, 'two']]);
  t.deepEqual([...(await h.state('b', 'm'))], [], 'a key without a map reads as empty');
});

test('list state: add appends, update replaces, clear empties; survives restore', async (t) => {
  let h = await kinds(t);
  for (const v of [3, 1, 2]) await h.process({ op: 'add', v }, { key: 'a' });
  t.deepEqual(await h.state('a', 'l'), [3, 1, 2]);
  h = await restored(t, h, Kinds);
  t.deepEqual(await h.state('a', 'l'), [3, 1, 2]);
  await h.process({ op: 'update', vs: [9] }, { key: 'a' });
  t.deepEqual(await h.state('a', 'l'), [9]);
  await h.process({ op: 'update', vs: [] }, { key: 'a' });
  t.deepEqual(await h.state('a', 'l'), []);
});

test('reducing state: folds what is added; undefined until then and after clear; survives restore', async (t) => {
  let h = await kinds(t);
  t.is(await h.state('a', 'r'), undefined);
  for (const v of [1, 2, 3]) await h.process({ op: 'add', v }, { key: 'a' });
  t.is(await h.state('a', 'r'), 6);
  h = await restored(t, h, Kinds);
  const [out] = await h.process({ op: 'add', v: 4 }, { key: 'a' });
  t.is((out!.value as { r: number }).r, 10);
  await h.process({ op: 'clear' }, { key: 'a' });
  t.is(await h.state('a', 'r'), undefined);
});

test('reading an undeclared state is a TypeError', async (t) => {
  const h = await kinds(t);
  await t.throwsAsync(h.state('a', 'nope' as 'v'), { instanceOf: TypeError });
});

/** A backend whose writes land a little later, so commits stay in flight while the task goes on. */
function slowBackend(inner: StateBackend): StateBackend {
  return { ...inner, write: async (batch) => (await sleep(1), inner.write(batch)) };
}

const KEYS = 1000;
const UPDATES = 3000;

/**
 * Update `i` goes to a key near `i / 3`, so a key comes back a few records
 * after its last update, often while the commit holding that update is in
 * flight; every key gets updates in several commits.
 */
const updates = Array.from({ length: UPDATES }, (_, i) => ({ value: i, key: `key-${(Math.floor(i / 3) + ((i * 7) % 5)) % KEYS}` }));

type Kind = 'value' | 'map' | 'list' | 'reducing';

/** What each key should hold after `updates`, folded in plain JavaScript. */
function reference(kind: Kind): Map<string, unknown> {
  const byKey = new Map<string, number[]>();
  for (const u of updates) byKey.set(u.key, [...(byKey.get(u.key) ?? []), u.value]);
  const expected = new Map<string, unknown>();
  for (let k = 0; k < KEYS; k++) {
    const seen = byKey.get(`key-${k}`) ?? [];
    const sum = seen.reduce((a, b) => a + b, 0);
    const pairs = new Map<number, number>();
    for (const i of seen) pairs.set(i % 3, i);
    expected.set(`key-${k}`, { value: sum, map: [...pairs], list: seen, reducing: seen.length > 0 ? sum : undefined }[kind]);
  }
  return expected;
}

/** Runs `updates` with a cache of 2 entries and commits every 7 records, then reads every key back. */
function evictionCase(kind: Kind) {
  return async (t: import('ava').ExecutionContext) => {
    const Updates = keyed({
      name: `evict-${kind}`,
      state: { v: value({ default: 0 }), m: map<number, number>(), l: list<number>(), r: reducing<number>((a, b) => a + b) },
      onRecord(i: number, { state }) {
        if (kind === 'value') state.v.set(state.v.get() + i);
        if (kind === 'map') state.m.set(i % 3, i);
        if (kind === 'list') state.l.add(i);
        if (kind === 'reducing') state.r.add(i);
      },
    });
    const h = await keyedHarness(Updates, { backend: slowBackend(createMemoryBackend()), stateCacheEntries: 2, commitEveryRecords: 7 });
    t.teardown(() => h.close());
    await h.processAll(updates.slice(0, UPDATES / 3));
    await h.snapshot(); // a commit point: the task restarts and loads every key from the backend again
    await h.processAll(updates.slice(UPDATES / 3));
    const name = { value: 'v', map: 'm', list: 'l', reducing: 'r' }[kind] as 'v';
    const wrong: string[] = [];
    for (const [key, expected] of reference(kind)) {
      const got: unknown = await h.state(key, name);
      const actual = got instanceof Map ? [...got] : got;
      if (JSON.stringify(actual) !== JSON.stringify(expected)) wrong.push(`${key}=${JSON.stringify(actual)}, not ${JSON.stringify(expected)}`);
    }
    t.deepEqual(wrong.slice(0, 3), [], `${wrong.length} of ${KEYS} keys read back wrong`);
  };
}

test('with a cache of 2 entries, 1000 value-state keys updated across commits all read back correctly', evictionCase('value'));
test('with a cache of 2 entries, 1000 map-state keys updated across commits all read back correctly', evictionCase('map'));
test('with a cache of 2 entries, 1000 reducing-state keys updated across commits all read back correctly', evictionCase('reducing'));
// A full cache must not evict the entry being read: list.add() mutates it in place.
test('with a cache of 2 entries, 1000 list-state keys updated across commits all read back correctly', evictionCase('list'));

test('list.add on a list loaded into a full cache keeps the list (cache of 0 entries)', async (t) => {
  const Lists = keyed({ name: 'lists', state: { items: list<number>() }, onRecord(v: number, ctx) { ctx.state.items.add(v); } });
  const h = await keyedHarness(Lists, { stateCacheEntries: 0 });
  t.teardown(() => h.close());
  await h.process(1, { key: 'a' });
  t.deepEqual(await h.state('a', 'items'), [1]); // a commit point: the task restarts with an empty cache
  await h.process(2, { key: 'a' });
  t.deepEqual(await h.state('a', 'items'), [1, 2]);
});

/** Sets a timer per record `{ at, del? }`; a timer emits `emits` records. */
const Reminders = keyed({
  name: 'reminders',
  state: { fired: list<number>() },
  onRecord(cmd: { at: number; del?: boolean }, ctx) {
    if (cmd.del) ctx.timers.deleteProcessingTime(cmd.at);
    else ctx.timers.processingTime(cmd.at);
  },
  onTimer(ts, ctx) {
    ctx.state.fired.add(ts);
    return [{ key: ctx.key, ts, now: ctx.timers.now(), eventTime: ctx.timestamp }, { second: true }];
  },
});

async function reminders(t: import('ava').ExecutionContext, startTime = 1000) {
  const h = await keyedHarness(Reminders, { startTime });
  t.teardown(() => h.close());
  return h;
}

const firedTimes = (out: { value: unknown }[]) => out.flatMap((r) => ('ts' in (r.value as object) ? [(r.value as { ts: number }).ts] : []));

test('processing-time timers fire when the clock reaches them, in time order', async (t) => {
  const h = await reminders(t);
  await h.process({ at: 1300 }, { key: 'c' });
  await h.process({ at: 1100 }, { key: 'a' });
  await h.process({ at: 1200 }, { key: 'b' });
  t.deepEqual(await h.advanceProcessingTime(99), [], 'nothing is due at 1099');
  const fired = await h.advanceProcessingTime(201);
  t.deepEqual(firedTimes(fired), [1100, 1200, 1300]);
  t.deepEqual(fired[0]!.value, { key: 'a', ts: 1100, now: 1300, eventTime: 1100 }, 'onTimer sees its key, its time as timestamp, and the clock');
  t.deepEqual(await h.state('b', 'fired'), [1200], 'and the state of its key');
  t.deepEqual(await h.advanceProcessingTime(1000), [], 'a timer fires once');
});

test('at most one timer per (key, ts)', async (t) => {
  const h = await reminders(t);
  await h.process({ at: 1500 }, { key: 'a' });
  await h.process({ at: 1500 }, { key: 'a' });
  await h.process({ at: 1500 }, { key: 'b' });
  t.deepEqual(await h.timers(), [{ ts: 1500, key: 'a' }, { ts: 1500, key: 'b' }]);
  const fired = await h.advanceProcessingTime(500);
  t.deepEqual(fired.filter((r) => 'ts' in (r.value as object)).map((r) => r.key), ['a', 'b']);
});

test('a deleted timer does not fire', async (t) => {
  const h = await reminders(t);
  await h.process({ at: 1500 }, { key: 'a' });
  await h.process({ at: 1600 }, { key: 'a' });
  await h.process({ at: 1500, del: true }, { key: 'a' });
  t.deepEqual(await h.timers(), [{ ts: 1600, key: 'a' }]);
  t.deepEqual(firedTimes(await h.advanceProcessingTime(1000)), [1600]);
  t.deepEqual(await h.state('a', 'fired'), [1600]);
});

test('a timer set and deleted between two commits neither fires nor is stored', async (t) => {
  const h = await reminders(t);
  await h.processAll([
    { value: { at: 1500 }, key: 'a' },
    { value: { at: 1500, del: true }, key: 'a' },
  ]);
  t.deepEqual(await h.timers(), []);
  t.deepEqual(await h.advanceProcessingTime(1000), []);
});

test('timers survive snapshot and restore, with the clock', async (t) => {
  let h = await reminders(t);
  await h.process({ at: 1200 }, { key: 'a' });
  await h.process({ at: 5000 }, { key: 'b' });
  t.deepEqual(firedTimes(await h.advanceProcessingTime(500)), [1200]);
  h = await restored(t, h, Reminders);
  t.is(h.now, 1500);
  t.deepEqual(await h.timers(), [{ ts: 5000, key: 'b' }], 'the fired timer is gone, the other kept');
  t.deepEqual(firedTimes(await h.advanceProcessingTime(3500)), [5000]);
  t.deepEqual(await h.state('a', 'fired'), [1200]);
  t.deepEqual(await h.state('b', 'fired'), [5000]);
});

test('a timer due at the current time fires at the next advance, even by 0', async (t) => {
  const h = await reminders(t);
  await h.process({ at: 1000 }, { key: 'a' });
  t.deepEqual(firedTimes(await h.advanceProcessingTime(0)), [1000]);
});

test('timer outputs have ids <task>:<generation>:t:<ts>:<key>:<i>', async (t) => {
  const h = await reminders(t);
  await h.process({ at: 1100 }, { key: 'a' });
  await h.process({ at: 1100 }, { key: 'b:c' });
  const fired = await h.advanceProcessingTime(100);
  t.deepEqual(fired.map((r) => r.msgId), [
    'harness/s0/0:t:1100:a:0',
    'harness/s0/0:t:1100:a:1',
    'harness/s0/0:t:1100:b:c:0',
    'harness/s0/0:t:1100:b:c:1',
  ]);
});
