/**
 * Reads a packed layout front to back (staged sink outputs, packed writes),
 * failing with the caller's error as soon as a field would run past the end.
 */

const MAX_VARINT_BYTES = 8;

export class ByteReader {
  private readonly buf: Buffer;

  /** @param fail the error for a malformed input, told what is wrong */
  constructor(
    bytes: Uint8Array,
    private readonly fail: (why: string) => Error,
    public at = 0,
  ) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.buf.length;
  }

  byte(): number {
    this.need(1);
    return this.buf[this.at++]!;
  }

  /** A big-endian float64. */
  double(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.at);
    this.at += 8;
    return v;
  }

  /** An unsigned LEB128 varint (runtime/wire/varint.ts). */
  varint(): number {
    let n = 0;
    for (let i = 0, scale = 1; i < MAX_VARINT_BYTES; i++, scale *= 0x80) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
    }
    throw this.fail(`varint too long at byte ${this.at}`);
  }

  /** The next `n` bytes, as a view. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** A varint length, then that many bytes of UTF-8. */
  string(): string {
    const n = this.varint();
    this.need(n);
    const s = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }

  /** Fails unless every byte was read; `what` says what came before. */
  end(what: string): void {
    if (this.at !== this.buf.length) throw this.fail(`${this.buf.length - this.at} bytes after ${what}`);
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw this.fail(`truncated at byte ${this.at}`);
  }
}
