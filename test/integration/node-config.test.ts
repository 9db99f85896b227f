/**
 * `millrace node start` with a bad configuration must stop at start-up with
 * a non-zero exit and an error naming its code and the offending field, and
 * do so within a bounded time. Asserts codes and field paths, never messages.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupNats, tempDir, type NatsFixture, type TempDir } from '../helpers/nats.js';
import { MILLRACE_BIN } from '../helpers/node-process.js';

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const running = new Set<ReturnType<typeof spawn>>();

/** Runs the CLI to completion, killing it (and failing the test through `code: null`) after `timeoutMs`. */
function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<CliResult> {
  const started = Date.now();
  // No MILLRACE_* from the test's own environment: each case sets exactly what it tests.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MILLRACE_')));
  const child = spawn(process.execPath, [MILLRACE_BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

let nats: NatsFixture;
let dir: TempDir;

test.before(async () => {
  nats = await setupNats();
  dir = await tempDir('millrace-cli-config-');
});

test.after.always(async () => {
  for (const child of running) child.kill('SIGKILL');
  await nats?.cleanup();
  await dir?.cleanup();
});

/** `node start` against the test's server, so only the case's own mistake can stop it. */
function startArgs(...extra: string[]): string[] {
  return ['node', 'start', '--nats', nats.url, '--data-dir', join(dir.path, 'data'), '--node-id', 'config-test', ...extra];
}

function assertRejected(t: ExecutionContext, result: CliResult, code: string, field?: string): void {
  t.is(result.signal, null, `the CLI exited by itself (took ${result.ms} ms); stderr:\n${result.stderr}`);
  t.not(result.code, 0, 'non-zero exit code');
  t.true(result.stderr.includes(code), `stderr names ${code}:\n${result.stderr}`);
  if (field !== undefined) t.true(result.stderr.includes(field), `stderr names the field ${field}:\n${result.stderr}`);
  t.false(result.stdout.includes('"node started"'), 'the node did not start');
}

test('an invalid MILLRACE_TASK_MAX_IN_FLIGHT stops start-up naming task.maxInFlight', async (t) => {
  t.timeout(30_000);
  const result = await runCli(startArgs(), { MILLRACE_TASK_MAX_IN_FLIGHT: 'abc' });
  assertRejected(t, result, 'MR_CONFIG_INVALID', 'task.maxInFlight');
  t.true(result.stderr.includes('MILLRACE_TASK_MAX_IN_FLIGHT'), 'the message says which variable set it');
});

test('an unknown field in --config stops start-up naming it', async (t) => {
  t.timeout(30_000);
  const file = join(dir.path, 'typo.json');
  writeFileSync(file, JSON.stringify({ task: { maxInFligth: 5 } }));
  const result = await runCli(startArgs('--config', file));
  assertRejected(t, result, 'MR_CONFIG_INVALID', 'task.maxInFligth');
});

test('a --job module that does not exist stops start-up with MR_JOB_MODULE', async (t) => {
  t.timeout(30_000);
  const result = await runCli(startArgs('--job', join(dir.path, 'no-such-job.js')));
  assertRejected(t, result, 'MR_JOB_MODULE');
});

test('an unreachable --nats fails with MR_NATS_CONNECT within a bounded time', async (t) => {
  t.timeout(30_000);
  // Port 1 on loopback: nothing listens there.
  const result = await runCli(['node', 'start', '--nats', 'nats://127.0.0.1:1', '--data-dir', join(dir.path, 'unreachable')], {}, 20_000);
  assertRejected(t, result, 'MR_NATS_CONNECT');
  t.log(`gave up after ${result.ms} ms`);
});
