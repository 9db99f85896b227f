import test from 'ava';
import { ErrorCodes } from '../../errors.js';
import { StagedOutputs, StagedOutputsWriter } from '../../runtime/task/staged-outputs.js';
import { prng } from '../fixtures/count-data.js';

type Output = [subject: string, data: number[], key: string, ts: number];

function readBack(bytes: Uint8Array): Output[] {
  const out: Output[] = [];
  new StagedOutputs(bytes).forEach((subject, data, key, ts, i) => {
    if (i !== out.length) throw new Error(`index ${i} out of order`);
    out.push([subject, [...data], key, ts]);
  });
  return out;
}

test('outputs read back in staging order with their subject, body, key and timestamp; the header gives sealedAt, subjects and count', (t) => {
  const random = prng(7);
  const subjects = ['mr.out.0', 'mr.out.1', 'orders.eu.élan', 'x'];
  const expected: Output[] = [];
  const writer = new StagedOutputsWriter();
  // Enough records to grow the buffer past its first allocation several times; keys and bodies of every size class of a varint.
  for (let i = 0; i < 20_000; i++) {
    const subject = subjects[Math.floor(random() * subjects.length)]!;
    const key = i % 1000 === 0 ? 'ключ-🔑'.repeat(1 + (i % 7)) : `user-${Math.floor(random() * 1e6)}`;
    const size = i % 5000 === 0 ? 20_000 : Math.floor(random() * 200);
    const data = Array.from({ length: size }, () => Math.floor(random() * 256));
    const ts = i === 3 ? 1.5 : 1_700_000_000_000 + i;
    writer.append(subject, Uint8Array.from(data), key, ts);
    expected.push([subject, data, key, ts]);
  }
  const packed = writer.finish(1_700_000_123_456);
  const outputs = new StagedOutputs(packed);
  t.is(outputs.sealedAt, 1_700_000_123_456);
  t.is(outputs.count, expected.length);
  t.deepEqual([...outputs.subjects].sort(), [...subjects].sort());
  t.deepEqual(readBack(packed), expected);
});

test('no outputs pack into a header alone', (t) => {
  const packed = new StagedOutputsWriter().finish(5);
  t.deepEqual(readBack(packed), []);
  t.is(new StagedOutputs(packed).count, 0);
});

test('bodies read back are views that stay valid while the packed bytes live (a publisher may hold them)', (t) => {
  const writer = new StagedOutputsWriter();
  const body = Uint8Array.of(1, 2, 3);
  writer.append('s', body, 'k', 0);
  body[0] = 9; // the writer copied it
  const views: Uint8Array[] = [];
  new StagedOutputs(writer.finish(0)).forEach((_s, data) => views.push(data));
  t.deepEqual([...views[0]!], [1, 2, 3]);
});

test('truncated or foreign bytes fail with MR_STATE_CORRUPTED instead of yielding wrong outputs', (t) => {
  const writer = new StagedOutputsWriter();
  writer.append('s', Uint8Array.of(1, 2, 3, 4), 'key', 42);
  writer.append('s', Uint8Array.of(5), 'key', 43);
  const packed = writer.finish(0);
  for (let cut = 1; cut < packed.length; cut++) {
    const error = t.throws(() => readBack(packed.subarray(0, cut)), undefined, `cut at ${cut}`);
    t.is((error as { code?: string }).code, ErrorCodes.STATE_CORRUPTED);
  }
  const foreign = Uint8Array.from(packed);
  foreign[0] = 0x92; // a msgpack array header, as the earlier layout began
  t.is((t.throws(() => new StagedOutputs(foreign)) as { code?: string }).code, ErrorCodes.STATE_CORRUPTED);
  const extra = Buffer.concat([packed, Buffer.of(0)]);
  t.is((t.throws(() => readBack(extra)) as { code?: string }).code, ErrorCodes.STATE_CORRUPTED);
});
