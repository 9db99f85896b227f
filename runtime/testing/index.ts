/** The test layer: a harness that runs a keyed operator in the real task, and the in-memory ports it runs on. */
export { keyedHarness, HARNESS_INPUT_STREAM, HARNESS_OUTPUT_STREAM } from './keyed-harness.js';
export type { KeyedHarness, EmittedRecord, RecordMeta, PendingTimer } from './keyed-harness.js';
export { DEFAULT_HARNESS_JOB, DEFAULT_OUTPUT_PARTITIONS, DEFAULT_STATE_CACHE_ENTRIES, DEFAULT_COMMIT_EVERY_RECORDS } from './harness-options.js';
export type { KeyedHarnessOptions } from './harness-options.js';
export type { HarnessSnapshot } from './snapshot.js';
export type { StateValue } from './state-reader.js';
export { memoryInput, DEFAULT_INPUT_SUBJECT } from './memory-input.js';
export type { MemoryInput, MemoryInputOptions, MemoryMessageInit, InputIdleState } from './memory-input.js';
export { memoryOutput, DEFAULT_OUTPUT_WINDOW } from './memory-output.js';
export type { MemoryOutput, MemoryOutputOptions, PublishedMessage } from './memory-output.js';
export { manualClock } from './manual-clock.js';
export type { ManualClock } from './manual-clock.js';
