/**
 * millrace: distributed, stateful stream processing on NATS JetStream and LevelDB.
 * The one public entry point.
 */
export { job, Stream, KeyedStream, keyed, value, map, list, reducing, source, sink, isJobDefinition } from './runtime/api/index.js';
export type {
  JobDefinition,
  JobOptions,
  JobBuilder,
  KeyedDefinition,
  KeyedContext,
  TimerService,
  StreamRecord,
  SourcePosition,
  Source,
  Sink,
  StreamSource,
  JetStreamSource,
  StreamSink,
  JetStreamSink,
  Format,
  ValueState,
  MapState,
  ListState,
  ReducingState,
  StateSpecs,
} from './runtime/api/index.js';
export { startNode } from './cluster/node.js';
export type { MillraceNode, StartNodeOptions } from './cluster/node.js';
export { connect } from './cluster/client.js';
export type { MillraceClient, ClientOptions, ProduceOptions, StreamAdmin } from './cluster/client.js';
export type { StreamDescription, CreateStreamOptions } from './cluster/transport/streams.js';
export type { DeadLetter, DeadLetterHandler } from './runtime/task/ports.js';
export { loadConfig, resolveConfig } from './config/index.js';
export type { NodeConfig, NodeConfigInput } from './config/index.js';
export { partitionOf } from './runtime/wire/partitioner.js';
export { decodeRecordValue } from './runtime/wire/codec.js';
export {
  ErrorCodes,
  MillraceError,
  ConfigError,
  RecordDecodeError,
  UserFunctionError,
  isMillraceError,
} from './errors.js';
export type { ErrorCode, Disposition } from './errors.js';
