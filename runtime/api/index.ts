/** What users touch: operator definitions, state, contexts, records, the DSL. Imports nothing of the engine. */
export { job, Stream, KeyedStream, isJobDefinition } from './pipeline.js';
export type { JobDefinition, JobBuilder, JobOptions, Operation } from './pipeline.js';
export { keyed } from './keyed.js';
export type { KeyedDefinition, KeyedContext, TimerService } from './keyed.js';
export { value, map, list, reducing } from './state.js';
export type * from './state.js';
export { source, sink } from './connectors.js';
export type { Source, Sink, StreamSource, JetStreamSource, StreamSink, JetStreamSink, Format } from './connectors.js';
export type { StreamRecord, SourcePosition } from './record.js';
