/**
 * The error catalogue: every error millrace raises on purpose is a
 * `MillraceError` with a stable `code` (documented in
 * docs/reference/errors.md; a test keeps the two in step) and a `disposition`
 * that says what the runtime does next. Argument mistakes in API calls are
 * plain `TypeError`s. Tests assert `err.code`, never the message.
 *
 * This module is a leaf: every layer may import it.
 */

/** What the runtime does after an error of this kind. */
export type Disposition =
  /** Nothing will make it succeed: stop (start-up) or skip to the dead-letter hook (records). */
  | 'terminal'
  /** Try again after a delay; the cause is expected to pass. */
  | 'retryable'
  /** The task's state cannot be trusted: restart the task from its last committed state. */
  | 'task-corrupted';

export const ErrorCodes = {
  /** A configuration value is missing or invalid; the message names the field path. */
  CONFIG_INVALID: 'MR_CONFIG_INVALID',
  /** A config file could not be read or parsed. */
  CONFIG_FILE: 'MR_CONFIG_FILE',
  /** The embedded nats-server binary is not installed. */
  NATS_SERVER_MISSING: 'MR_NATS_SERVER_MISSING',
  /** The embedded nats-server did not start. */
  NATS_SERVER_START: 'MR_NATS_SERVER_START',
  /** Could not connect to NATS. */
  NATS_CONNECT: 'MR_NATS_CONNECT',
  /** The NATS server has no JetStream, or a JetStream API call failed. */
  JETSTREAM: 'MR_JETSTREAM',
  /** The server accepted a stream/consumer config but changed or dropped a field millrace relies on. */
  SERVER_IGNORED_CONFIG: 'MR_SERVER_IGNORED_CONFIG',
  /** A stream that millrace was asked to use does not exist. */
  STREAM_NOT_FOUND: 'MR_STREAM_NOT_FOUND',
  /** A stream exists but is not laid out as a millrace partitioned stream. */
  STREAM_NOT_PARTITIONED: 'MR_STREAM_NOT_PARTITIONED',
  /** A stream with this name exists with a different configuration. */
  STREAM_CONFLICT: 'MR_STREAM_CONFLICT',
  /** JetStream refused a publish (no stream for the subject, limits, ...). */
  PUBLISH_REJECTED: 'MR_PUBLISH_REJECTED',
  /** No PubAck arrived in time, after retries. */
  PUBLISH_TIMEOUT: 'MR_PUBLISH_TIMEOUT',
  /** A record's body or headers could not be decoded. */
  RECORD_DECODE: 'MR_RECORD_DECODE',
  /** A user function (key extractor, map, filter, handler) threw for one record. */
  USER_FUNCTION: 'MR_USER_FUNCTION',
  /** A job definition is malformed (empty, no sink, duplicate operator names, ...). */
  JOB_INVALID: 'MR_JOB_INVALID',
  /** A job module could not be loaded or does not export a job. */
  JOB_MODULE: 'MR_JOB_MODULE',
  /** Stored state could not be decoded or the state store failed. */
  STATE_CORRUPTED: 'MR_STATE_CORRUPTED',
  /** The node was asked to do something after it stopped. */
  NODE_STOPPED: 'MR_NODE_STOPPED',
  /** A checkpoint manifest was not committed: another one won the compare-and-set, or its leader epoch is stale. */
  CHECKPOINT_CONFLICT: 'MR_CHECKPOINT_CONFLICT',
  /** The live nodes' capacities (`cluster.capacity`) add up to fewer than a job's tasks: the job waits for more nodes. */
  CLUSTER_CAPACITY: 'MR_CLUSTER_CAPACITY',
  /** A task saw a record of a newer run of its job: its own run was rolled back and it must restart. */
  RUN_SUPERSEDED: 'MR_RUN_SUPERSEDED',
  /** The broker has lost records a committed checkpoint says it had: the job stops instead of diverging. */
  INPUT_LOST: 'MR_INPUT_LOST',
  /** A savepoint name is malformed, taken or unknown, or a checkpoint does not fit the job's tasks. */
  SAVEPOINT_INVALID: 'MR_SAVEPOINT_INVALID',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface MillraceErrorOptions {
  cause?: unknown;
  disposition?: Disposition;
  /** Structured context for logs (field path, stream sequence, ...). */
  details?: Record<string, unknown>;
}

/** Base class of every error millrace raises on purpose. */
export class MillraceError extends Error {
  readonly code: ErrorCode;
  readonly disposition: Disposition;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: MillraceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.disposition = options.disposition ?? 'terminal';
    this.details = options.details ?? {};
  }
}

/** One or more configuration fields are invalid; `issues` lists each with its path. */
export class ConfigError extends MillraceError {
  readonly issues: readonly { path: string; message: string }[];

  constructor(issues: readonly { path: string; message: string }[], source?: string) {
    const where = source ? ` (from ${source})` : '';
    const list = issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n');
    super(ErrorCodes.CONFIG_INVALID, `invalid configuration${where}:\n${list}`, {
      details: { issues, source },
    });
    this.issues = issues;
  }
}

/** A record could not be decoded; carries the stream and sequence it came from. */
export class RecordDecodeError extends MillraceError {
  constructor(message: string, details: { stream?: string; seq?: number; subject?: string }, cause?: unknown) {
    super(ErrorCodes.RECORD_DECODE, message, { cause, details, disposition: 'terminal' });
  }
}

/** A user-supplied function threw while processing one record. */
export class UserFunctionError extends MillraceError {
  constructor(operator: string, cause: unknown, details: Record<string, unknown> = {}) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(ErrorCodes.USER_FUNCTION, `operator "${operator}" threw: ${reason}`, {
      cause,
      details: { operator, ...details },
      disposition: 'terminal',
    });
  }
}

/** Shorthand for errors that need no subclass of their own. */
export function millraceError(code: ErrorCode, message: string, options?: MillraceErrorOptions): MillraceError {
  return new MillraceError(code, message, options);
}

export function isMillraceError(err: unknown, code?: ErrorCode): err is MillraceError {
  return err instanceof MillraceError && (code === undefined || err.code === code);
}
