/**
 * Micro-benchmark of the LevelDB state backend: the cost of a getSync miss
 * (a cache miss on the task's hot path) and of committing write-sets.
 * Not part of the test run: `npm run build && node dist/bench/state-backend.js`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyspace } from '../runtime/state/keys.js';
import { openLevelDbBackend } from '../runtime/state/leveldb-backend.js';

const MISSES = 200_000;
const BATCHES = 20;
const BATCH_SIZE = 10_000;

function report(name: string, ops: number, startNs: bigint): void {
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  process.stdout.write(`${name.padEnd(28)} ${Math.round(ops / seconds).toLocaleString('en').padStart(12)} ops/s\n`);
}

const dir = await mkdtemp(join(tmpdir(), 'millrace-bench-'));
try {
  const backend = await openLevelDbBackend(dir);
  const ks = keyspace('bench', 'count', 0);
  const value = new Uint8Array(64).fill(7);

  let start = process.hrtime.bigint();
  for (let b = 0; b < BATCHES; b++) {
    const batch = [];
    for (let i = 0; i < BATCH_SIZE; i++) batch.push({ key: ks.state(`user-${b}-${i}`, 'total'), value });
    await backend.write(batch);
  }
  report(`put (batches of ${BATCH_SIZE})`, BATCHES * BATCH_SIZE, start);

  start = process.hrtime.bigint();
  for (let i = 0; i < MISSES; i++) backend.getSync(ks.state(`absent-${i}`, 'total'));
  report('getSync miss', MISSES, start);

  start = process.hrtime.bigint();
  for (let i = 0; i < MISSES; i++) backend.getSync(ks.state(`user-${i % BATCHES}-${i % BATCH_SIZE}`, 'total'));
  report('getSync hit', MISSES, start);

  start = process.hrtime.bigint();
  for (let i = 0; i < MISSES; i++) ks.state(`user-${i}`, 'total');
  report('keyspace.state() encode', MISSES, start);

  await backend.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
