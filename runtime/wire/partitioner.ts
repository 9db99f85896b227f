/**
 * The partitioner: which partition a key belongs to. Stable across versions,
 * processes and machines; specified with test vectors in docs/wire-format.md.
 *
 * partition(key, P) = fnv1a32(utf8(key)) mod P
 *
 * FNV-1a (32 bit) is the hash nats-server's own `partition(n, ...)` subject
 * mapping uses, so a server-side mapping and millrace agree on the bytes.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

/** FNV-1a 32-bit hash of `bytes`, as an unsigned integer. */
export function fnv1a32(bytes: Uint8Array): number {
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]!;
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash >>> 0;
}

/** FNV-1a of a string's UTF-8 bytes; ASCII keys skip the encoder. */
export function fnv1a32String(key: string): number {
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return fnv1a32(encoder.encode(key));
    hash ^= c;
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash >>> 0;
}

/** The partition of `key` among `partitions` partitions. */
export function partitionOf(key: string, partitions: number): number {
  return fnv1a32String(key) % partitions;
}
