/**
 * Fuses a stage's operators into one function call chain: no queue, no hop
 * between operators. A record travels as (value, key, timestamp) arguments;
 * a `StreamRecord` object is built only for user functions that ask for it.
 * A user function that throws is reported as a UserFunctionError naming the
 * operator, and only the current record is affected.
 */
import { UserFunctionError, isMillraceError } from '../../errors.js';
import type { KeyedDefinition } from '../api/keyed.js';
import type { StreamRecord } from '../api/record.js';
import type { ChainOperation } from '../plan/compile.js';

export type Emit = (value: unknown, key: string, timestamp: number) => void;

/** Builds the runtime of a keyed operator that forwards to `downstream`. */
export type KeyedFactory = (definition: KeyedDefinition<unknown, unknown, any>, downstream: Emit) => Emit;

export function buildChain(operations: readonly ChainOperation[], terminal: Emit, keyedFactory: KeyedFactory): Emit {
  let next = terminal;
  for (let i = operations.length - 1; i >= 0; i--) next = link(operations[i]!, next, keyedFactory);
  return next;
}

function link(op: ChainOperation, next: Emit, keyedFactory: KeyedFactory): Emit {
  switch (op.kind) {
    case 'filter': {
      const { fn, name } = op;
      const wantsRecord = fn.length >= 2;
      return (value, key, ts) => {
        let keep: boolean;
        try {
          keep = wantsRecord ? fn(value, record(value, key, ts)) : (fn as (v: unknown) => boolean)(value);
        } catch (err) {
          throw userError(name, err);
        }
        if (keep) next(value, key, ts);
      };
    }
    case 'map': {
      const { fn, name } = op;
      const wantsRecord = fn.length >= 2;
      return (value, key, ts) => {
        let out: unknown;
        try {
          out = wantsRecord ? fn(value, record(value, key, ts)) : (fn as (v: unknown) => unknown)(value);
        } catch (err) {
          throw userError(name, err);
        }
        next(out, key, ts);
      };
    }
    case 'flatMap': {
      const { fn, name } = op;
      return (value, key, ts) => {
        let out: unknown[];
        try {
          out = [...fn(value, record(value, key, ts))];
        } catch (err) {
          throw userError(name, err);
        }
        for (const v of out) next(v, key, ts);
      };
    }
    case 'process':
      return keyedFactory(op.definition, next);
  }
}

function record(value: unknown, key: string, timestamp: number): StreamRecord<unknown> {
  return { value, key, timestamp };
}

export function userError(operator: string, err: unknown): Error {
  return isMillraceError(err) ? err : new UserFunctionError(operator, err);
}
