/**
 * Compiles a job definition into stages: the operators between two
 * repartitions, fused into one chain that runs inside one task per
 * partition. `keyBy` ends a stage; its records cross an internal stream
 * named `<job>__s<n>` to the next.
 */
import { ErrorCodes, millraceError } from '../../errors.js';
import type { JetStreamSink, JetStreamSource } from '../api/connectors.js';
import type { JobDefinition, Operation } from '../api/pipeline.js';

export type StageInput =
  | { readonly kind: 'stream'; readonly stream: string; readonly partitions: number | undefined; readonly internal: boolean }
  | { readonly kind: 'jetstream'; readonly source: JetStreamSource<unknown> };

export type StageOutput =
  | {
      readonly kind: 'stream';
      readonly stream: string;
      readonly partitions: number | undefined;
      readonly internal: boolean;
      /** The keyBy that ends the stage: records are re-keyed with it before they are routed. */
      readonly rekey: { readonly name: string; readonly fn: (value: unknown) => string } | undefined;
    }
  | { readonly kind: 'jetstream'; readonly sink: JetStreamSink<unknown> };

/** Operators fused inside a stage (no repartition among them). */
export type ChainOperation = Exclude<Operation, { kind: 'keyBy' }>;

export interface StagePlan {
  readonly index: number;
  /** `s0`, `s1`, … */
  readonly id: string;
  readonly input: StageInput;
  readonly operations: readonly ChainOperation[];
  readonly output: StageOutput;
}

export interface JobPlan {
  readonly job: string;
  readonly stages: readonly StagePlan[];
}

/** The internal stream a stage writes to (its next stage reads it), or undefined when the stage ends at a sink. */
export function internalOutputStream(stage: StagePlan): string | undefined {
  return stage.output.kind === 'stream' && stage.output.internal ? stage.output.stream : undefined;
}

export function internalStreamName(job: string, stageIndex: number): string {
  return `${job}__s${stageIndex}`;
}

export function compileJob(definition: JobDefinition): JobPlan {
  const stages: StagePlan[] = [];
  let input: StageInput =
    definition.source.kind === 'stream'
      ? { kind: 'stream', stream: definition.source.stream, partitions: definition.source.partitions, internal: false }
      : { kind: 'jetstream', source: definition.source };
  let chain: ChainOperation[] = [];
  const names = new Set<string>();
  for (const op of definition.operations) {
    if (names.has(op.name)) invalid(definition.name, `operator name "${op.name}" is used twice`);
    names.add(op.name);
    if (op.kind !== 'keyBy') {
      chain.push(op);
      continue;
    }
    const index = stages.length;
    const next = internalStreamName(definition.name, index + 1);
    stages.push({
      index,
      id: `s${index}`,
      input,
      operations: chain,
      output: { kind: 'stream', stream: next, partitions: op.partitions, internal: true, rekey: { name: op.name, fn: op.fn } },
    });
    input = { kind: 'stream', stream: next, partitions: op.partitions, internal: true };
    chain = [];
  }
  const sink = definition.sink;
  const index = stages.length;
  stages.push({
    index,
    id: `s${index}`,
    input,
    operations: chain,
    output:
      sink.kind === 'stream'
        ? { kind: 'stream', stream: sink.stream, partitions: sink.partitions, internal: false, rekey: undefined }
        : { kind: 'jetstream', sink },
  });
  return { job: definition.name, stages };
}

function invalid(job: string, why: string): never {
  throw millraceError(ErrorCodes.JOB_INVALID, `job "${job}": ${why}`, { details: { job } });
}
