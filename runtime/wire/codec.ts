/**
 * Record bodies and state values: plain msgpack (msgpackr's default options,
 * maps not records) so any msgpack library can read what millrace writes;
 * JSON for existing streams that carry it.
 */
import { pack, unpack } from 'msgpackr';
import type { Format } from '../api/connectors.js';

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeMsgpack(value: unknown): Uint8Array {
  return pack(value);
}

export function decodeMsgpack(bytes: Uint8Array): unknown {
  return unpack(bytes);
}

export function encodeJson(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

export function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(fromUtf8.decode(bytes));
}

export function encoderFor(format: Format): (value: unknown) => Uint8Array {
  return format === 'json' ? encodeJson : encodeMsgpack;
}

export function decoderFor(format: Format): (bytes: Uint8Array) => unknown {
  return format === 'json' ? decodeJson : decodeMsgpack;
}

/** Decodes the body of a record of a millrace stream (msgpack). */
export function decodeRecordValue<T>(bytes: Uint8Array): T {
  return unpack(bytes) as T;
}
