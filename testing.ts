/**
 * millrace/testing: test your own keyed operators in the engine's real task,
 * the way Flink's KeyedOneInputStreamOperatorTestHarness and Kafka's
 * TopologyTestDriver test theirs (docs/guides/testing-operators.md).
 *
 *   const h = await keyedHarness(UserTotals);
 *   await h.process(payment, { key: 'alice' });   // → what it emitted
 *   await h.state('alice', 'totals');             // → the committed state
 */
export {
  keyedHarness,
  memoryInput,
  memoryOutput,
  manualClock,
  HARNESS_INPUT_STREAM,
  HARNESS_OUTPUT_STREAM,
  DEFAULT_HARNESS_JOB,
  DEFAULT_OUTPUT_PARTITIONS,
  DEFAULT_STATE_CACHE_ENTRIES,
  DEFAULT_COMMIT_EVERY_RECORDS,
  DEFAULT_INPUT_SUBJECT,
  DEFAULT_OUTPUT_WINDOW,
} from './runtime/testing/index.js';
export type {
  KeyedHarness,
  KeyedHarnessOptions,
  EmittedRecord,
  RecordMeta,
  PendingTimer,
  HarnessSnapshot,
  StateValue,
  MemoryInput,
  MemoryInputOptions,
  MemoryMessageInit,
  InputIdleState,
  MemoryOutput,
  MemoryOutputOptions,
  PublishedMessage,
  ManualClock,
} from './runtime/testing/index.js';
export { createMemoryBackend } from './runtime/state/memory-backend.js';
export type { StateBackend, BackendWrite } from './runtime/state/backend.js';
export type { InputFactory, InputMessage, TaskInput, TaskOutput, DeadLetter } from './runtime/task/ports.js';
