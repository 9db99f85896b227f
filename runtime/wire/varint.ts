/**
 * Unsigned LEB128 varints, the length prefix of every packed millrace
 * layout: state keys (state/keys.ts), staged sink outputs and packed
 * writes. Numbers up to 2^53; arithmetic instead of bit shifts, which stop
 * at 32 bits.
 */

export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

/** Writes `n` at `at`; returns the end. */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}
