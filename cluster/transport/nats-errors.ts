/**
 * The one place that inspects NATS errors (STYLE 12): everything else sees
 * MillraceErrors with stable codes.
 */
import { ErrorCodes, MillraceError, millraceError, type ErrorCode } from '../../errors.js';

interface NatsLikeError {
  code?: string;
  message?: string;
  api_error?: { code?: number; err_code?: number; description?: string };
}

/** JetStream API error code for "stream not found". */
const JS_STREAM_NOT_FOUND = 10059;
/** JetStream API error code for "consumer not found". */
const JS_CONSUMER_NOT_FOUND = 10014;

/** JetStream API error code for a failed compare-and-set ("wrong last sequence"). */
const JS_WRONG_LAST_SEQUENCE = 10071;

/** A KV create/update lost its compare-and-set: someone else wrote the key first. */
export function isWrongLastSequence(err: unknown): boolean {
  return (err as NatsLikeError)?.api_error?.err_code === JS_WRONG_LAST_SEQUENCE;
}

export function isStreamNotFound(err: unknown): boolean {
  return (err as NatsLikeError)?.api_error?.err_code === JS_STREAM_NOT_FOUND;
}

export function isConsumerNotFound(err: unknown): boolean {
  return (err as NatsLikeError)?.api_error?.err_code === JS_CONSUMER_NOT_FOUND;
}

/** Wraps a NATS/JetStream failure as a MillraceError with `what` saying what millrace was doing. */
export function translateNatsError(err: unknown, what: string, code: ErrorCode = ErrorCodes.JETSTREAM): MillraceError {
  if (err instanceof MillraceError) return err;
  const e = err as NatsLikeError;
  const detail = e?.api_error?.description ?? e?.message ?? String(err);
  const disposition = e?.code === 'TIMEOUT' || e?.code === '503' ? 'retryable' : 'terminal';
  return millraceError(code, `${what}: ${detail}`, {
    cause: err,
    disposition,
    details: { natsCode: e?.code, apiErrCode: e?.api_error?.err_code },
  });
}
