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
/** On internal streams: the task that produced the record or barrier (`<job>/<stage>/<partition>`). */
export const PRODUCER_HEADER = 'Mr-Producer';
/** On internal streams: the generation (run) of the job that produced it, decimal. */
export const GENERATION_HEADER = 'Mr-Gen';
/** On a barrier record (empty body): the checkpoint it ends, decimal. */
export const BARRIER_HEADER = 'Mr-Barrier';
