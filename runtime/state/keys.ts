/**
 * The binary layout of state-backend keys (docs/reference/state-layout.md).
 *
 *   key     = namespace:u8 segment*
 *   segment = length:uvarint bytes          (UTF-8 for strings, raw for ts)
 *
 *   0x01 keyed state     job, operator, partition, record key, state name
 *   0x02 input position  job, stage, partition
 *   0x03 timer           job, operator, partition, ts, record key
 *   0x04 staged output   job, stage, partition, checkpoint
 *   0x05 undo record     job, stage, partition, checkpoint, chunk
 *
 * Partitions are decimal strings; a timer's ts is a raw 8-byte big-endian
 * unsigned integer, so inside one timer prefix keys sort by time. Because
 * every segment carries its length, a prefix built from whole segments never
 * matches a longer name: operator "a" is 01 ... 01 61, operator "ab" is
 * 01 ... 02 61 62.
 *
 * Encoding runs at commit time for every dirty entry, so `keyspace()` encodes
 * (job, operator, partition) once and each key costs one allocation.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import { varintLength, writeVarint } from '../wire/varint.js';

export const NS_STATE = 0x01;
export const NS_POSITION = 0x02;
export const NS_TIMER = 0x03;
export const NS_STAGED = 0x04;
export const NS_UNDO = 0x05;

const TIMESTAMP_BYTES = 8;
const TWO_32 = 2 ** 32;

/** A decoded key; `kind` names the namespace. */
export type DecodedKey =
  | { kind: 'state'; job: string; operator: string; partition: number; key: string; stateName: string }
  | { kind: 'position'; job: string; stage: string; partition: number }
  | { kind: 'timer'; job: string; operator: string; partition: number; ts: number; key: string }
  | { kind: 'staged'; job: string; stage: string; partition: number; checkpoint: number }
  | { kind: 'undo'; job: string; stage: string; partition: number; checkpoint: number; chunk: number };

export type DecodedTimerKey = Omit<Extract<DecodedKey, { kind: 'timer' }>, 'kind'>;

/** Keys of one (job, operator, partition), encoded from a precomputed prefix. */
export interface Keyspace {
  /** Prefix of every state key of this operator partition. */
  readonly statePrefix: Uint8Array;
  /** Prefix of every timer key of this operator partition. */
  readonly timerPrefix: Uint8Array;
  /** The key of state `stateName` of record key `key`. */
  state(key: string, stateName: string): Uint8Array;
  /** The key of a processing-time timer of record key `key` due at `ts` (ms). */
  timer(ts: number, key: string): Uint8Array;
}

/** Precomputes the prefixes of (job, operator, partition) for fast key encoding. */
export function keyspace(job: string, operator: string, partition: number): Keyspace {
  const statePrefix = head(NS_STATE, [job, operator, partitionString(partition)]);
  const timerPrefix = head(NS_TIMER, [job, operator, partitionString(partition)]);
  return Object.freeze({
    statePrefix,
    timerPrefix,
    state: (key: string, stateName: string) => withKeyAndName(statePrefix, key, stateName),
    timer: (ts: number, key: string) => withTimer(timerPrefix, ts, key),
  });
}

/** The key of state `stateName` of record `key` in one operator partition. */
export function stateKey(job: string, operator: string, partition: number, key: string, stateName: string): Uint8Array {
  return withKeyAndName(statePrefix(job, operator, partition), key, stateName);
}

/** Prefix of the state of a job, of one of its operators, or of one operator partition. */
export function statePrefix(job: string, operator?: string, partition?: number): Uint8Array {
  if (operator === undefined && partition !== undefined) {
    throw new TypeError('statePrefix: a partition needs an operator');
  }
  const segments = [job];
  if (operator !== undefined) segments.push(operator);
  if (partition !== undefined) segments.push(partitionString(partition));
  return head(NS_STATE, segments);
}

/** The key of a task's stored position (runtime/state/task-position.ts). */
export function positionKey(job: string, stage: string, partition: number): Uint8Array {
  return head(NS_POSITION, [job, stage, partitionString(partition)]);
}

/** Prefix of the sink outputs a task staged for checkpoints not yet published. */
export function stagedPrefix(job: string, stage: string, partition: number): Uint8Array {
  return head(NS_STAGED, [job, stage, partitionString(partition)]);
}

/** The key of the sink outputs a task staged under `checkpoint`; keys sort by checkpoint. */
export function stagedKey(job: string, stage: string, partition: number, checkpoint: number): Uint8Array {
  return withTimestamp(stagedPrefix(job, stage, partition), checkpoint);
}

/** Prefix of a task's undo records (runtime/state/undo-log.ts); with `checkpoint`, of that checkpoint's only. */
export function undoPrefix(job: string, stage: string, partition: number, checkpoint?: number): Uint8Array {
  const task = head(NS_UNDO, [job, stage, partitionString(partition)]);
  return checkpoint === undefined ? task : withTimestamp(task, checkpoint);
}

/** The key of chunk `chunk` of the undo record of `checkpoint`; keys sort by checkpoint, then chunk. */
export function undoKey(job: string, stage: string, partition: number, checkpoint: number, chunk: number): Uint8Array {
  return withTimestamp(undoPrefix(job, stage, partition, checkpoint), chunk);
}

/** The key of a processing-time timer of record `key` due at `ts` (ms since the epoch). */
export function timerKey(job: string, operator: string, partition: number, ts: number, key: string): Uint8Array {
  return withTimer(timerPrefix(job, operator, partition), ts, key);
}

/** Prefix of every timer of one operator partition; its keys sort by due time. */
export function timerPrefix(job: string, operator: string, partition: number): Uint8Array {
  return head(NS_TIMER, [job, operator, partitionString(partition)]);
}

/** Decodes a timer key; throws MR_STATE_CORRUPTED if `bytes` is not one. */
export function decodeTimerKey(bytes: Uint8Array): DecodedTimerKey {
  const decoded = decodeKey(bytes);
  if (decoded.kind !== 'timer') throw corrupted(bytes, 'not a timer key');
  const { kind: _kind, ...timer } = decoded;
  return timer;
}

/** Decodes any key; throws MR_STATE_CORRUPTED if `bytes` is not a well-formed key. */
export function decodeKey(bytes: Uint8Array): DecodedKey {
  const r = new SegmentReader(bytes, 1);
  let decoded: DecodedKey;
  switch (bytes[0]) {
    case NS_STATE:
      decoded = { kind: 'state', job: r.string(), operator: r.string(), partition: r.partition(),
        key: r.string(), stateName: r.string() };
      break;
    case NS_POSITION:
      decoded = { kind: 'position', job: r.string(), stage: r.string(), partition: r.partition() };
      break;
    case NS_TIMER:
      decoded = { kind: 'timer', job: r.string(), operator: r.string(), partition: r.partition(),
        ts: r.timestamp(), key: r.string() };
      break;
    case NS_STAGED:
      decoded = { kind: 'staged', job: r.string(), stage: r.string(), partition: r.partition(), checkpoint: r.timestamp() };
      break;
    case NS_UNDO:
      decoded = { kind: 'undo', job: r.string(), stage: r.string(), partition: r.partition(), checkpoint: r.timestamp(), chunk: r.timestamp() };
      break;
    default:
      throw corrupted(bytes, `unknown namespace byte ${bytes[0]}`);
  }
  if (r.pos !== bytes.length) throw corrupted(bytes, 'trailing bytes');
  return decoded;
}

function partitionString(partition: number): string {
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new TypeError(`partition must be a non-negative integer, got ${partition}`);
  }
  return String(partition);
}

/** UTF-8 byte length; equals `s.length` exactly when `s` is ASCII. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  }
  return s.length;
}

/** Writes one string segment of `len` = utf8Length(s) bytes; returns the end. */
function writeSegment(out: Buffer, pos: number, s: string, len: number): number {
  pos = writeVarint(out, pos, len);
  // Copying ASCII by hand is ~3x faster than Buffer#write for short keys.
  if (len === s.length) for (let i = 0; i < len; i++) out[pos + i] = s.charCodeAt(i);
  else out.write(s, pos, 'utf8');
  return pos + len;
}

/** `prefix` followed by string segments, in one allocation. */
function withSegments(prefix: Uint8Array, strings: readonly string[]): Buffer {
  const lengths = strings.map(utf8Length);
  let total = prefix.length;
  for (const len of lengths) total += varintLength(len) + len;
  const out = Buffer.allocUnsafe(total);
  out.set(prefix, 0);
  let pos = prefix.length;
  for (let i = 0; i < strings.length; i++) pos = writeSegment(out, pos, strings[i]!, lengths[i]!);
  return out;
}

/** The hot path of keyspace().state(): two segments, no intermediate arrays. */
function withKeyAndName(prefix: Uint8Array, key: string, stateName: string): Buffer {
  const keyLength = utf8Length(key);
  const nameLength = utf8Length(stateName);
  const out = Buffer.allocUnsafe(
    prefix.length + varintLength(keyLength) + keyLength + varintLength(nameLength) + nameLength,
  );
  out.set(prefix, 0);
  writeSegment(out, writeSegment(out, prefix.length, key, keyLength), stateName, nameLength);
  return out;
}

function head(namespace: number, strings: readonly string[]): Buffer {
  return withSegments(Uint8Array.of(namespace), strings);
}

function withTimer(prefix: Uint8Array, ts: number, key: string): Buffer {
  const keyLength = utf8Length(key);
  const out = Buffer.allocUnsafe(prefix.length + 1 + TIMESTAMP_BYTES + varintLength(keyLength) + keyLength);
  out.set(prefix, 0);
  writeSegment(out, writeUint64(out, prefix.length, ts), key, keyLength);
  return out;
}

function withTimestamp(prefix: Uint8Array, n: number): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + 1 + TIMESTAMP_BYTES);
  out.set(prefix, 0);
  writeUint64(out, prefix.length, n);
  return out;
}

/** Writes `n` as a segment of 8 big-endian bytes, so keys sort by it; returns the end. */
function writeUint64(out: Buffer, pos: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new TypeError(`timer timestamp must be a non-negative safe integer, got ${n}`);
  }
  out[pos++] = TIMESTAMP_BYTES;
  // Two 32-bit halves: a safe integer does not fit the bitwise operators.
  out.writeUInt32BE(Math.floor(n / TWO_32), pos);
  out.writeUInt32BE(n % TWO_32, pos + 4);
  return pos + TIMESTAMP_BYTES;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class SegmentReader {
  constructor(private readonly bytes: Uint8Array, public pos: number) {}

  private segment(): Uint8Array {
    let length = 0;
    let scale = 1;
    for (;;) {
      const b = this.bytes[this.pos++];
      if (b === undefined || scale > 2 ** 28) throw corrupted(this.bytes, 'bad segment length');
      length += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
    }
    const end = this.pos + length;
    if (end > this.bytes.length) throw corrupted(this.bytes, 'segment runs past the end');
    const seg = this.bytes.subarray(this.pos, end);
    this.pos = end;
    return seg;
  }

  string(): string {
    const seg = this.segment();
    try {
      return utf8.decode(seg);
    } catch (err) {
      throw corrupted(this.bytes, 'segment is not UTF-8', err);
    }
  }

  partition(): number {
    const s = this.string();
    if (!/^(0|[1-9][0-9]*)$/.test(s)) throw corrupted(this.bytes, `bad partition "${s}"`);
    return Number(s);
  }

  timestamp(): number {
    const seg = this.segment();
    if (seg.length !== TIMESTAMP_BYTES) throw corrupted(this.bytes, 'timer timestamp is not 8 bytes');
    const view = new DataView(seg.buffer, seg.byteOffset, TIMESTAMP_BYTES);
    const ts = view.getUint32(0) * TWO_32 + view.getUint32(4);
    if (!Number.isSafeInteger(ts)) throw corrupted(this.bytes, 'timer timestamp beyond 2^53');
    return ts;
  }
}

function corrupted(bytes: Uint8Array, reason: string, cause?: unknown): Error {
  return millraceError(ErrorCodes.STATE_CORRUPTED, `malformed state key ${Buffer.from(bytes).toString('hex')}: ${reason}`, {
    cause,
    disposition: 'task-corrupted',
  });
}
