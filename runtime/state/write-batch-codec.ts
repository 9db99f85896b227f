/**
 * A list of backend writes as one buffer: what a snapshot holds in the
 * object store and an undo record in LevelDB (docs/reference/state-layout.md).
 *
 * msgpack did this before, through one `[key, value]` array per write: at
 * every checkpoint a task packs tens of thousands of them twice (snapshot,
 * undo record), and the arrays, built only to be packed, were a good part of
 * its garbage. This layout is two length prefixes and two copies per write.
 *
 * Layout: `u8 version (1) · varint count · count × (varint key length · key ·
 * varint value length + 1, or 0 for a delete · value)`; varints are unsigned
 * LEB128. Decoded keys and values are views into the encoded bytes.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import { ByteReader } from '../wire/byte-reader.js';
import { varintLength, writeVarint } from '../wire/varint.js';
import type { BackendWrite } from './backend.js';

const VERSION = 1;

export function encodeWrites(writes: readonly BackendWrite[]): Uint8Array {
  let size = 1 + varintLength(writes.length);
  for (const w of writes) {
    size += varintLength(w.key.length) + w.key.length;
    size += w.value === undefined ? 1 : varintLength(w.value.length + 1) + w.value.length;
  }
  const out = new Uint8Array(size);
  out[0] = VERSION;
  let at = writeVarint(out, 1, writes.length);
  for (const w of writes) {
    at = writeVarint(out, at, w.key.length);
    out.set(w.key, at);
    at += w.key.length;
    if (w.value === undefined) {
      out[at++] = 0;
      continue;
    }
    at = writeVarint(out, at, w.value.length + 1);
    out.set(w.value, at);
    at += w.value.length;
  }
  return out;
}

/** @param what names the bytes in the error (a snapshot, an undo record) */
export function decodeWrites(bytes: Uint8Array, what: string): BackendWrite[] {
  const fail = (why: string) => millraceError(ErrorCodes.STATE_CORRUPTED, `${what} cannot be read: ${why}`, { disposition: 'task-corrupted' });
  const r = new ByteReader(bytes, fail);
  const version = r.byte();
  if (version !== VERSION) throw fail(`format version ${version}, expected ${VERSION}`);
  const count = r.varint();
  const writes: BackendWrite[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const key = r.bytes(r.varint());
    const valueLength = r.varint();
    writes[i] = { key, value: valueLength === 0 ? undefined : r.bytes(valueLength - 1) };
  }
  r.end(`the last of ${count} writes`);
  return writes;
}
