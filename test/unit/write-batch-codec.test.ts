import test from 'ava';
import { ErrorCodes } from '../../errors.js';
import type { BackendWrite } from '../../runtime/state/backend.js';
import { decodeWrites, encodeWrites } from '../../runtime/state/write-batch-codec.js';
import { prng } from '../fixtures/count-data.js';

const plain = (writes: readonly BackendWrite[]) => writes.map((w) => [Buffer.from(w.key).toString('hex'), w.value && Buffer.from(w.value).toString('hex')]);

test('writes round-trip in order: puts, deletes and empty values stay apart, lengths of every varint size', (t) => {
  const random = prng(11);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
  const writes: BackendWrite[] = [
    { key: bytes(3), value: undefined },
    { key: bytes(3), value: new Uint8Array(0) },
    { key: new Uint8Array(0), value: bytes(1) },
    { key: bytes(200), value: bytes(127) },
    { key: bytes(20_000), value: bytes(300_000) },
  ];
  for (let i = 0; i < 5_000; i++) writes.push({ key: bytes(1 + Math.floor(random() * 60)), value: random() < 0.2 ? undefined : bytes(Math.floor(random() * 40)) });
  t.deepEqual(plain(decodeWrites(encodeWrites(writes), 'test')), plain(writes));
  t.deepEqual(decodeWrites(encodeWrites([]), 'test'), []);
});

test('truncated, padded or foreign bytes fail with MR_STATE_CORRUPTED naming what was read', (t) => {
  const encoded = encodeWrites([{ key: Uint8Array.of(1, 2), value: Uint8Array.of(3) }, { key: Uint8Array.of(4), value: undefined }]);
  for (let cut = 0; cut < encoded.length; cut++) {
    const error = t.throws(() => decodeWrites(encoded.subarray(0, cut), 'snapshot j/s0/0/1'));
    t.is((error as { code?: string }).code, ErrorCodes.STATE_CORRUPTED, `cut at ${cut}`);
    t.regex(error!.message, /snapshot j\/s0\/0\/1/);
  }
  t.is((t.throws(() => decodeWrites(Uint8Array.from([...encoded, 0]), 'x')) as { code?: string }).code, ErrorCodes.STATE_CORRUPTED);
  // msgpack of [[key, value]], the earlier layout: an array header, not version 1.
  t.is((t.throws(() => decodeWrites(Uint8Array.of(0x91, 0x92, 0xc4, 0x01, 0x01, 0xc0), 'x')) as { code?: string }).code, ErrorCodes.STATE_CORRUPTED);
});
