import test from 'ava';
import { ErrorCodes } from '../../errors.js';
import {
  decodeKey, decodeTimerKey, keyspace, positionKey, stateKey, statePrefix, timerKey, timerPrefix,
} from '../../runtime/state/keys.js';

const startsWith = (bytes: Uint8Array, prefix: Uint8Array) =>
  bytes.length >= prefix.length && Buffer.compare(bytes.subarray(0, prefix.length), prefix) === 0;

test('every kind round-trips through decodeKey', (t) => {
  t.deepEqual(decodeKey(stateKey('job', 'count', 3, 'user-1', 'total')),
    { kind: 'state', job: 'job', operator: 'count', partition: 3, key: 'user-1', stateName: 'total' });
  t.deepEqual(decodeKey(positionKey('job', 'source:orders', 12)),
    { kind: 'position', job: 'job', stage: 'source:orders', partition: 12 });
  t.deepEqual(decodeKey(timerKey('job', 'sessions', 0, 2 ** 40 + 7, 'k')),
    { kind: 'timer', job: 'job', operator: 'sessions', partition: 0, ts: 2 ** 40 + 7, key: 'k' });
  t.deepEqual(decodeTimerKey(timerKey('j', 'o', 1, Number.MAX_SAFE_INTEGER, '')),
    { job: 'j', operator: 'o', partition: 1, ts: Number.MAX_SAFE_INTEGER, key: '' });
});

test('keyspace() encodes the same bytes as the free functions', (t) => {
  const ks = keyspace('job', 'op', 7);
  t.deepEqual([...ks.state('k', 's')], [...stateKey('job', 'op', 7, 'k', 's')]);
  t.deepEqual([...ks.timer(123, 'k')], [...timerKey('job', 'op', 7, 123, 'k')]);
  t.deepEqual([...ks.statePrefix], [...statePrefix('job', 'op', 7)]);
  t.deepEqual([...ks.timerPrefix], [...timerPrefix('job', 'op', 7)]);
});

test('the worked example of docs/reference/state-layout.md', (t) => {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');
  t.is(hex(stateKey('j', 'op', 3, 'k1', 'n')), '01 01 6a 02 6f 70 01 33 02 6b 31 01 6e');
  t.is(hex(timerKey('j', 'op', 3, 1000, 'k1')), '03 01 6a 02 6f 70 01 33 08 00 00 00 00 00 00 03 e8 02 6b 31');
});

test('timer keys sort by ts in byte order, also above 2^32', (t) => {
  const ks = keyspace('job', 'op', 1);
  const tss = [0, 1, 255, 256, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER];
  for (let i = 0; i < 500; i++) tss.push(Math.floor(Math.random() * 2 ** (1 + Math.floor(Math.random() * 52))));
  // Longer record keys must not disturb the order: ts comes before the key.
  const keys = tss.map((ts, i) => ({ ts, bytes: ks.timer(ts, 'k'.repeat(i % 5)) }));
  keys.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  for (let i = 1; i < keys.length; i++) t.true(keys[i - 1]!.ts <= keys[i]!.ts);
  for (const { ts, bytes } of keys) t.is(decodeTimerKey(bytes).ts, ts);
});

test('a prefix never matches a longer name: operator "a" vs "ab", partition 1 vs 10, job "j" vs "j1"', (t) => {
  t.false(startsWith(stateKey('job', 'ab', 0, 'k', 's'), statePrefix('job', 'a')));
  t.false(startsWith(stateKey('job', 'a', 10, 'k', 's'), statePrefix('job', 'a', 1)));
  t.false(startsWith(stateKey('j1', 'a', 0, 'k', 's'), statePrefix('j')));
  t.false(startsWith(timerKey('job', 'ab', 0, 5, 'k'), timerPrefix('job', 'a', 0)));
  t.false(startsWith(timerKey('job', 'a', 10, 5, 'k'), timerPrefix('job', 'a', 1)));
  // ...while the whole-segment prefixes do match their own keys.
  const key = stateKey('job', 'a', 1, 'k', 's');
  for (const p of [statePrefix('job'), statePrefix('job', 'a'), statePrefix('job', 'a', 1)]) t.true(startsWith(key, p));
  t.true(startsWith(timerKey('job', 'a', 1, 5, 'k'), timerPrefix('job', 'a', 1)));
  // Namespaces are disjoint: state and timers of one operator share no prefix.
  t.false(startsWith(timerKey('job', 'a', 1, 5, 'k'), statePrefix('job')));
});

test('record key and state name are separate segments', (t) => {
  t.notDeepEqual([...stateKey('j', 'o', 0, 'ab', 'c')], [...stateKey('j', 'o', 0, 'a', 'bc')]);
});

test('non-ASCII names and long keys round-trip', (t) => {
  const long = 'x'.repeat(300); // a two-byte uvarint length
  for (const key of ['Zürich', '東京', '🦀 crab', '', long]) {
    const ks = keyspace('jöb', 'öp', 2);
    t.like(decodeKey(ks.state(key, 'naïve')), { key, stateName: 'naïve', job: 'jöb', operator: 'öp' });
    t.is(decodeTimerKey(ks.timer(99, key)).key, key);
  }
  t.is(Buffer.from(stateKey('j', 'o', 0, long, 's')).subarray(7, 9).toString('hex'), 'ac02');
});

test('bad arguments are TypeErrors', (t) => {
  t.throws(() => stateKey('j', 'o', -1, 'k', 's'), { instanceOf: TypeError });
  t.throws(() => positionKey('j', 's', 1.5), { instanceOf: TypeError });
  t.throws(() => timerKey('j', 'o', 0, -1, 'k'), { instanceOf: TypeError });
  t.throws(() => timerKey('j', 'o', 0, 2 ** 53, 'k'), { instanceOf: TypeError });
  t.throws(() => statePrefix('j', undefined, 0), { instanceOf: TypeError });
});

test('malformed keys are MR_STATE_CORRUPTED', (t) => {
  const corrupted = { code: ErrorCodes.STATE_CORRUPTED };
  const good = stateKey('j', 'o', 0, 'k', 's');
  t.throws(() => decodeKey(Uint8Array.of(0x09, 0)), corrupted); // unknown namespace
  t.throws(() => decodeKey(good.subarray(0, good.length - 1)), corrupted); // truncated
  t.throws(() => decodeKey(Uint8Array.of(...good, 0)), corrupted); // trailing bytes
  t.throws(() => decodeKey(Uint8Array.of(0x02, 1, 0x6a, 1, 0x73, 2, 0x30, 0x31)), corrupted); // partition "01"
  t.throws(() => decodeKey(Uint8Array.of(0x02, 1, 0xff, 1, 0x73, 1, 0x30)), corrupted); // not UTF-8
  t.throws(() => decodeTimerKey(good), corrupted);
});
