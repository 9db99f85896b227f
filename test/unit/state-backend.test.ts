/**
 * One conformance suite for every StateBackend, run against memory and
 * LevelDB. Backend-specific behaviour (persistence, the directory lock) sits
 * in `levelOnly` cases below the shared ones.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, isMillraceError, type MillraceError } from '../../errors.js';
import type { BackendWrite, StateBackend } from '../../runtime/state/backend.js';
import { openLevelDbBackend } from '../../runtime/state/leveldb-backend.js';
import { createMemoryBackend } from '../../runtime/state/memory-backend.js';

const b = (...bytes: number[]) => Uint8Array.from(bytes);
const put = (key: Uint8Array, value: Uint8Array): BackendWrite => ({ key, value });
const del = (key: Uint8Array): BackendWrite => ({ key, value: undefined });

async function collect(backend: StateBackend, prefix: Uint8Array): Promise<[number[], number[]][]> {
  const out: [number[], number[]][] = [];
  for await (const [k, v] of backend.entries(prefix)) out.push([[...k], [...v]]);
  return out;
}

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-state-'));
  tempDirs.push(dir);
  return dir;
}
test.after.always(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

function conformance(name: string, open: () => Promise<StateBackend>): void {
  const it = (title: string, body: (t: import('ava').ExecutionContext, s: StateBackend) => Promise<void>) =>
    test(`${name}: ${title}`, async (t) => {
      const s = await open();
      try {
        await body(t, s);
      } finally {
        await s.close();
      }
    });

  it('getSync of a missing key is undefined', async (t, s) => {
    t.is(s.getSync(b(1, 2, 3)), undefined);
  });

  it('write then getSync; undefined deletes', async (t, s) => {
    await s.write([put(b(1), b(10)), put(b(2), b(20))]);
    t.deepEqual([...s.getSync(b(1))!], [10]);
    t.deepEqual([...s.getSync(b(2))!], [20]);
    await s.write([del(b(1)), put(b(2), b(21))]);
    t.is(s.getSync(b(1)), undefined);
    t.deepEqual([...s.getSync(b(2))!], [21]);
  });

  it('getMany reads values in the order of its keys, undefined for missing ones', async (t, s) => {
    await s.write([put(b(1), b(10)), put(b(3), b(30)), put(b(4), b())]);
    const values = await s.getMany([b(3), b(2), b(1), b(4)]);
    t.deepEqual(values.map((v) => (v ? [...v] : v)), [[30], undefined, [10], []]);
    t.deepEqual(await s.getMany([]), []);
  });

  it('an empty value is a value, not a delete', async (t, s) => {
    await s.write([put(b(1), b())]);
    t.is(s.getSync(b(1))?.length, 0);
  });

  it('later writes to the same key in one batch win', async (t, s) => {
    await s.write([put(b(1), b(1)), del(b(1)), put(b(2), b(1)), put(b(2), b(2))]);
    t.is(s.getSync(b(1)), undefined);
    t.deepEqual([...s.getSync(b(2))!], [2]);
  });

  it('a batch that fails validation writes nothing', async (t, s) => {
    await s.write([put(b(9), b(9))]);
    const bad = [del(b(9)), put(b(1), b(1)), { key: 'not-bytes', value: b(2) }] as unknown as BackendWrite[];
    await t.throwsAsync(s.write(bad), { instanceOf: TypeError });
    const badValue = [put(b(1), b(1)), { key: b(3), value: 'x' }] as unknown as BackendWrite[];
    await t.throwsAsync(s.write(badValue), { instanceOf: TypeError });
    t.is(s.getSync(b(1)), undefined);
    t.deepEqual([...s.getSync(b(9))!], [9]);
  });

  it('entries(prefix) yields exactly the prefixed keys in byte order', async (t, s) => {
    const keys = [b(0x01), b(0x01, 0x00), b(0x01, 0xfe, 0xff), b(0x01, 0xff), b(0x01, 0xff, 0x00),
      b(0x01, 0xff, 0xff), b(0x01, 0xff, 0xff, 0xff), b(0x02), b(0x02, 0x00), b(0x00, 0xff), b(0xff), b(0xff, 0xff)];
    // Written in reverse so a backend that keeps insertion order fails.
    await s.write(keys.map((k, i) => put(k, b(i))).reverse());
    const keysOf = async (p: Uint8Array) => (await collect(s, p)).map(([k]) => k);

    t.deepEqual(await keysOf(b(0x01, 0xff)), [[0x01, 0xff], [0x01, 0xff, 0x00], [0x01, 0xff, 0xff], [0x01, 0xff, 0xff, 0xff]]);
    t.deepEqual(await keysOf(b(0x01, 0xff, 0xff)), [[0x01, 0xff, 0xff], [0x01, 0xff, 0xff, 0xff]]);
    t.deepEqual(await keysOf(b(0x01)), [[0x01], [0x01, 0x00], [0x01, 0xfe, 0xff], [0x01, 0xff], [0x01, 0xff, 0x00],
      [0x01, 0xff, 0xff], [0x01, 0xff, 0xff, 0xff]]);
    t.deepEqual(await keysOf(b(0xff)), [[0xff], [0xff, 0xff]]);
    t.deepEqual(await keysOf(b(0x03)), []);
    const all = await keysOf(b());
    t.is(all.length, keys.length);
    t.deepEqual(all, [...all].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    // Values come with their keys.
    t.deepEqual(await collect(s, b(0x02, 0x00)), [[[0x02, 0x00], [8]]]);
  });

  it('entries does not modify a Buffer prefix', async (t, s) => {
    const prefix = Buffer.from([0x01, 0xff]);
    await s.write([put(b(0x01, 0xff, 1), b(1)), put(b(0x02), b(2))]);
    t.is((await collect(s, prefix)).length, 1);
    t.deepEqual([...prefix], [0x01, 0xff]);
  });

  it('stored values are not aliased to written or returned buffers', async (t, s) => {
    const key = Buffer.from([5]);
    const value = Buffer.from([1, 2, 3]);
    await s.write([put(key, value)]);
    value[0] = 99;
    key[0] = 6;
    const read = s.getSync(b(5))!;
    t.deepEqual([...read], [1, 2, 3]);
    read[1] = 99;
    t.deepEqual([...s.getSync(b(5))!], [1, 2, 3]);
    for await (const [k, v] of s.entries(b(5))) { k[0] = 7; v[2] = 99; }
    t.deepEqual(await collect(s, b(5)), [[[5], [1, 2, 3]]]);
  });

  test(`${name}: close is idempotent and later calls fail with MR_NODE_STOPPED`, async (t) => {
    const s = await open();
    await s.write([put(b(1), b(1))]);
    await Promise.all([s.close(), s.close()]);
    await s.close();
    const stopped = { code: ErrorCodes.NODE_STOPPED };
    t.throws(() => s.getSync(b(1)), stopped);
    await t.throwsAsync(s.write([put(b(2), b(2))]), stopped);
    await t.throwsAsync(s.getMany([b(1)]), stopped);
    await t.throwsAsync(collect(s, b()), stopped);
  });
}

conformance('memory', async () => createMemoryBackend());
conformance('leveldb', async () => openLevelDbBackend(await tempDir()));

test('leveldb: state persists across close and reopen', async (t) => {
  const dir = await tempDir();
  const first = await openLevelDbBackend(dir);
  await first.write([put(b(1, 2), b(3)), put(b(1, 3), b(4)), del(b(1, 2))]);
  await first.close();
  const second = await openLevelDbBackend(dir);
  t.is(second.getSync(b(1, 2)), undefined);
  t.deepEqual(await collect(second, b(1)), [[[1, 3], [4]]]);
  await second.close();
});

test('leveldb: a dir open in another backend is refused with MR_STATE_CORRUPTED', async (t) => {
  const dir = await tempDir();
  const first = await openLevelDbBackend(dir);
  const err = await t.throwsAsync<MillraceError>(openLevelDbBackend(dir), { code: ErrorCodes.STATE_CORRUPTED });
  t.true(isMillraceError(err, ErrorCodes.STATE_CORRUPTED));
  t.is(err?.disposition, 'terminal');
  t.is((err?.details as { reason?: string }).reason, 'locked');
  await first.close();
  // The lock goes with the first backend.
  await (await openLevelDbBackend(dir)).close();
});
