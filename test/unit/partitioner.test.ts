/**
 * The partitioner against its spec: the vector table is read from
 * docs/wire-format.md at test time so the doc and the code cannot drift, and
 * the published FNV-1a vectors are an independent reference for both.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fnv1a32, fnv1a32String, partitionOf } from '../../runtime/wire/partitioner.js';

interface Vector {
  key: string;
  bytesHex: string;
  hash: number;
  p16: number;
  p8: number;
}

/** Rows of the table between the `partition-vectors` markers of the wire-format doc. */
function docVectors(): Vector[] {
  const doc = readFileSync(new URL('../../../docs/wire-format.md', import.meta.url), 'utf8');
  const section = /<!-- partition-vectors:start -->([\s\S]*?)<!-- partition-vectors:end -->/.exec(doc);
  if (!section) throw new Error('docs/wire-format.md has no partition-vectors table');
  const rows = section[1]!.split('\n').filter((line) => line.startsWith('| `'));
  return rows.map((row) => {
    const cells = row.split('|').slice(1, -1).map((cell) => cell.trim().replace(/^`|`$/g, ''));
    const [key, bytes, hash, p16, p8] = cells as [string, string, string, string, string];
    return {
      key: JSON.parse(key) as string,
      bytesHex: bytes === '(none)' ? '' : bytes,
      hash: Number.parseInt(hash, 16),
      p16: Number(p16),
      p8: Number(p8),
    };
  });
}

test('the documented vectors hold', (t) => {
  const vectors = docVectors();
  // An empty or mangled table must not pass vacuously.
  t.deepEqual(
    vectors.map((v) => v.key),
    ['', 'a', 'user-42', 'user-1', 'héllo', '日本', '0'],
  );
  for (const v of vectors) {
    const label = JSON.stringify(v.key);
    t.is(Buffer.from(v.key, 'utf8').toString('hex'), v.bytesHex, `${label} bytes`);
    t.is(fnv1a32String(v.key), v.hash, `${label} hash`);
    t.is(partitionOf(v.key, 16), v.p16, `${label} P=16`);
    t.is(partitionOf(v.key, 8), v.p8, `${label} P=8`);
  }
});

test('published FNV-1a 32 vectors', (t) => {
  t.is(fnv1a32String('a'), 0xe40c292c);
  t.is(fnv1a32String('foobar'), 0xbf9cf968);
  t.is(fnv1a32(new TextEncoder().encode('foobar')), 0xbf9cf968);
  t.is(fnv1a32(new Uint8Array()), 0x811c9dc5);
});

test('fnv1a32String hashes the UTF-8 bytes', (t) => {
  const encoder = new TextEncoder();
  // ASCII takes the fast path; the rest switch to the encoder mid-string.
  const keys = ['', 'a', 'order-123', 'x'.repeat(1000), 'é', 'abc-é', '日本語キー', 'emoji-😀', '\u0080', '\u07ff\u0800'];
  for (const key of keys) t.is(fnv1a32String(key), fnv1a32(encoder.encode(key)), JSON.stringify(key));
});

test('10k keys spread evenly over 16 partitions', (t) => {
  const counts = new Array<number>(16).fill(0);
  for (let i = 0; i < 10_000; i++) counts[partitionOf(`user-${i}`, 16)]!++;
  const mean = 10_000 / 16;
  for (const [partition, count] of counts.entries()) {
    t.true(Math.abs(count - mean) <= mean * 0.25, `partition ${partition} has ${count} keys (mean ${mean})`);
  }
});
