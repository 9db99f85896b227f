/**
 * A state backend's contents as plain data, the reference tests compare
 * restored state against: `{ hex(key): hex(value) }`.
 */
import type { StateBackend } from '../../runtime/state/backend.js';

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Every entry under `prefix` (default: all of them). */
export async function dump(backend: StateBackend, prefix: Uint8Array = new Uint8Array(0)): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const [k, v] of backend.entries(prefix)) out[hex(k)] = hex(v);
  return out;
}

/** Every entry under any of `prefixes`. */
export async function dumpUnder(backend: StateBackend, prefixes: readonly Uint8Array[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const prefix of prefixes) Object.assign(out, await dump(backend, prefix));
  return out;
}
