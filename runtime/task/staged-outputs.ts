/**
 * The sink outputs a transactional task stages for one checkpoint, packed
 * into one buffer as they are produced.
 *
 * Staged outputs live until their checkpoint commits, seconds under load:
 * kept as one tuple and one body buffer each, a second's worth of outputs
 * outlived the young generation and was moved and marked by every major GC,
 * then msgpack-encoded once more into the seal. Packed here, a body is
 * copied once into a growing buffer and its own bytes die young; the seal
 * takes the packed bytes as they are (decision 003, state layout).
 *
 * Layout (docs/reference/state-layout.md, "staged sink outputs"):
 *
 *   u8 version (1) · f64 sealedAt · varint subjects · subjects ·
 *   varint records · records
 *
 * a subject is `varint length · UTF-8`; a record is
 * `varint subject index · varint key length · key UTF-8 · f64 ts ·
 * varint body length · body`. Numbers are big-endian; varints are unsigned
 * LEB128.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import { ByteReader } from '../wire/byte-reader.js';
import { writeVarint } from '../wire/varint.js';

const VERSION = 1;
const INITIAL_BYTES = 64 * 1024;

/** Collects one checkpoint's outputs; `finish` gives the packed bytes. */
export class StagedOutputsWriter {
  private buf = Buffer.allocUnsafe(INITIAL_BYTES);
  private length = 0;
  private readonly subjects = new Map<string, number>();
  /** Outputs appended so far. */
  count = 0;

  append(subject: string, data: Uint8Array, key: string, ts: number): void {
    let index = this.subjects.get(subject);
    if (index === undefined) {
      index = this.subjects.size;
      this.subjects.set(subject, index);
    }
    this.reserve(5 + 5 + 3 * key.length + 8 + 5 + data.length);
    this.varint(index);
    const keyLength = Buffer.byteLength(key, 'utf8');
    this.varint(keyLength);
    this.length += this.buf.write(key, this.length, keyLength, 'utf8');
    this.buf.writeDoubleBE(ts, this.length);
    this.length += 8;
    this.varint(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
    this.count++;
  }

  /** The packed outputs, sealed at `sealedAt` (ms since the epoch). The writer is spent. */
  finish(sealedAt: number): Uint8Array {
    const records = this.buf.subarray(0, this.length);
    const head = new HeadWriter();
    head.byte(VERSION);
    head.double(sealedAt);
    head.varint(this.subjects.size);
    for (const subject of this.subjects.keys()) head.string(subject);
    head.varint(this.count);
    const headBytes = head.bytes();
    const out = Buffer.allocUnsafe(headBytes.length + records.length);
    out.set(headBytes, 0);
    out.set(records, headBytes.length);
    return out;
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + bytes));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  private varint(n: number): void {
    this.length = writeVarint(this.buf, this.length, n);
  }
}

/** One staged output as read back: `data` is a view into the packed bytes. */
export type StagedOutputVisitor = (subject: string, data: Uint8Array, key: string, ts: number, index: number) => void;

/** Packed staged outputs read back: the header at once, the records on each `forEach`. */
export class StagedOutputs {
  readonly sealedAt: number;
  readonly subjects: readonly string[];
  readonly count: number;
  private readonly bytes: Uint8Array;
  private readonly recordsAt: number;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    const r = new ByteReader(bytes, corrupted);
    const version = r.byte();
    if (version !== VERSION) throw corrupted(`version ${version}, expected ${VERSION}`);
    this.sealedAt = r.double();
    const subjects: string[] = [];
    for (let n = r.varint(); n > 0; n--) subjects.push(r.string());
    this.subjects = subjects;
    this.count = r.varint();
    this.recordsAt = r.at;
  }

  /** Visits every output in the order it was staged. */
  forEach(visit: StagedOutputVisitor): void {
    const r = new ByteReader(this.bytes, corrupted, this.recordsAt);
    for (let i = 0; i < this.count; i++) {
      const subject = this.subjects[r.varint()];
      if (subject === undefined) throw corrupted(`record ${i} names a subject that is not in the table`);
      const key = r.string();
      const ts = r.double();
      const data = r.bytes(r.varint());
      visit(subject, data, key, ts, i);
    }
    r.end(`the last of ${this.count} records`);
  }
}

function corrupted(what: string) {
  return millraceError(ErrorCodes.STATE_CORRUPTED, `staged sink outputs cannot be read: ${what}`, { disposition: 'task-corrupted' });
}

/** The small header, written once per seal. */
class HeadWriter {
  private readonly parts: Buffer[] = [];

  byte(n: number): void {
    this.parts.push(Buffer.of(n));
  }

  double(n: number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(n);
    this.parts.push(b);
  }

  varint(n: number): void {
    const b = Buffer.allocUnsafe(10);
    this.parts.push(b.subarray(0, writeVarint(b, 0, n)));
  }

  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.parts.push(b);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}
