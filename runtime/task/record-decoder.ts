/**
 * Turns a delivered message into (value, key, timestamp): millrace streams
 * carry key and event time in headers and a msgpack body; other JetStream
 * streams carry JSON or msgpack and a user key extractor.
 */
import { RecordDecodeError, UserFunctionError } from '../../errors.js';
import { EVENT_TIME_HEADER, KEY_HEADER } from '../wire/headers.js';
import { decodeMsgpack, decoderFor } from '../wire/codec.js';
import type { StageInput } from '../plan/compile.js';
import type { InputMessage } from './ports.js';

export interface DecodedRecord {
  value: unknown;
  key: string;
  timestamp: number;
}

export type RecordDecoder = (msg: InputMessage, into: DecodedRecord) => void;

export function recordDecoder(input: StageInput, stream: string): RecordDecoder {
  if (input.kind === 'stream') {
    return (msg, into) => {
      if (!msg.headers?.has(KEY_HEADER)) throw decodeError(`record has no ${KEY_HEADER} header`, msg, stream);
      const key = msg.headers.get(KEY_HEADER);
      try {
        into.value = decodeMsgpack(msg.data);
      } catch (cause) {
        throw decodeError('record body is not msgpack', msg, stream, cause);
      }
      into.key = key;
      const ts = Number(msg.headers?.get(EVENT_TIME_HEADER));
      into.timestamp = Number.isFinite(ts) && ts > 0 ? ts : Math.floor(msg.info.timestampNanos / 1e6);
    };
  }
  const { source } = input;
  const decode = decoderFor(source.format);
  return (msg, into) => {
    let value: unknown;
    try {
      value = decode(msg.data);
    } catch (cause) {
      throw decodeError(`record body is not ${source.format}`, msg, stream, cause);
    }
    let key: string;
    try {
      key = source.key(value);
    } catch (cause) {
      throw new UserFunctionError('key extractor', cause, { stream, seq: msg.seq, subject: msg.subject });
    }
    if (typeof key !== 'string') {
      throw new UserFunctionError('key extractor', new TypeError(`key extractor returned ${typeof key}, not a string`), {
        stream,
        seq: msg.seq,
      });
    }
    let timestamp: number;
    try {
      timestamp = source.timestamp ? source.timestamp(value) : Math.floor(msg.info.timestampNanos / 1e6);
    } catch (cause) {
      throw new UserFunctionError('timestamp extractor', cause, { stream, seq: msg.seq });
    }
    into.value = value;
    into.key = key;
    into.timestamp = timestamp;
  };
}

function decodeError(why: string, msg: InputMessage, stream: string, cause?: unknown): RecordDecodeError {
  const reason = cause instanceof Error ? `: ${cause.message}` : '';
  return new RecordDecodeError(`${why}${reason}`, { stream, seq: msg.seq, subject: msg.subject }, cause);
}
