/**
 * Header names of millrace records (docs/wire-format.md). Bodies are msgpack;
 * these NATS headers carry what the runtime routes and orders by.
 */

/** The record key (UTF-8 string). */
export const KEY_HEADER = 'Mr-Key';
/** Event time, milliseconds since the Unix epoch, decimal. */
export const EVENT_TIME_HEADER = 'Mr-Ts';
/** JetStream's de-duplication id; millrace sets it deterministically. */
export const MSG_ID_HEADER = 'Nats-Msg-Id';
