/**
 * The error catalogue and its documentation stay in step: every code has a
 * section in docs/reference/errors.md and every section is a real code.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  ConfigError,
  ErrorCodes,
  MillraceError,
  RecordDecodeError,
  UserFunctionError,
  isMillraceError,
  millraceError,
} from '../../errors.js';

const doc = readFileSync(new URL('../../../docs/reference/errors.md', import.meta.url), 'utf8');
const headings = [...doc.matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1]!);
const codes: string[] = Object.values(ErrorCodes);

test('every code is documented', (t) => {
  const missing = codes.filter((code) => !headings.includes(code));
  t.deepEqual(missing, [], 'codes without a "## CODE" section in docs/reference/errors.md');
});

test('every documented heading is a real code, once', (t) => {
  t.deepEqual(
    headings.filter((h) => !codes.includes(h)),
    [],
    'sections for codes not in ErrorCodes',
  );
  t.is(new Set(headings).size, headings.length, 'a code is documented twice');
});

test('codes are unique MR_ strings', (t) => {
  t.is(new Set(codes).size, codes.length);
  for (const code of codes) t.regex(code, /^MR_[A-Z0-9_]+$/);
});

test('MillraceError carries code, disposition, cause and details', (t) => {
  const cause = new Error('socket closed');
  const err = millraceError(ErrorCodes.PUBLISH_TIMEOUT, 'no PubAck', {
    cause,
    disposition: 'retryable',
    details: { subject: 'mr.s.0' },
  });
  t.true(err instanceof MillraceError);
  t.true(err instanceof Error);
  t.is(err.code, ErrorCodes.PUBLISH_TIMEOUT);
  t.is(err.disposition, 'retryable');
  t.is(err.cause, cause);
  t.deepEqual(err.details, { subject: 'mr.s.0' });
  t.true(isMillraceError(err, ErrorCodes.PUBLISH_TIMEOUT));
  t.false(isMillraceError(err, ErrorCodes.JETSTREAM));
  t.false(isMillraceError(cause));

  // Without options: terminal, no cause.
  const plain = new MillraceError(ErrorCodes.JOB_INVALID, 'no sink');
  t.is(plain.disposition, 'terminal');
  t.is(plain.cause, undefined);
  t.is(plain.name, 'MillraceError');
});

test('ConfigError lists its issues', (t) => {
  const issues = [
    { path: 'nats.url', message: 'must be a nats:// URL' },
    { path: '', message: 'unknown key "x"' },
  ];
  const err = new ConfigError(issues, 'millrace.json');
  t.is(err.code, ErrorCodes.CONFIG_INVALID);
  t.is(err.disposition, 'terminal');
  t.is(err.name, 'ConfigError');
  t.deepEqual(err.issues, issues);
  t.deepEqual(err.details, { issues, source: 'millrace.json' });
});

test('subclasses set their code and keep the cause', (t) => {
  const thrown = new RangeError('bad input');
  const user = new UserFunctionError('enrich', thrown, { seq: 7 });
  t.is(user.code, ErrorCodes.USER_FUNCTION);
  t.is(user.cause, thrown);
  t.is(user.details.operator, 'enrich');

  const decode = new RecordDecodeError('not msgpack', { stream: 's', seq: 3 }, thrown);
  t.is(decode.code, ErrorCodes.RECORD_DECODE);
  t.is(decode.disposition, 'terminal');
  t.is(decode.cause, thrown);
});
