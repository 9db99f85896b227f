/**
 * README's first command runs examples/transactions/demo on the embedded
 * defaults; this runs the same program (with --exit) and checks the totals
 * it prints against the pipeline computed directly from the generator.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { addToTotal, classify, enrich, isWorthProcessing, toPayment, type UserTotal } from '../../examples/transactions/model.js';
import { transactions } from '../../examples/transactions/generator.js';
import { tempDir } from '../helpers/nats.js';

const DEMO = fileURLToPath(new URL('../../examples/transactions/demo.js', import.meta.url));
const COUNT = 3000;

test('the example job on the embedded defaults prints per-user totals equal to a direct computation', async (t) => {
  t.timeout(90_000);
  const dir = await tempDir('millrace-demo-');
  t.teardown(() => dir.cleanup());
  const child = spawn(process.execPath, [DEMO, '--exit'], {
    cwd: dir.path,
    env: { ...process.env, MILLRACE_DATA_DIR: dir.path, DEMO_TRANSACTIONS: String(COUNT) },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.is(code, 0, out);

  const expected = new Map<string, UserTotal>();
  for (const p of transactions(COUNT, 'ref').filter(isWorthProcessing).map(toPayment).map(enrich).map(classify)) {
    expected.set(p.user, addToTotal(expected.get(p.user), p));
  }
  const printed = new Map<string, { count: number; total: number; highRisk: number }>();
  for (const line of out.split('\n')) {
    const m = /^(\w+)\s+.*?\s+(\d+)\s+([\d.]+)\s+(\d+)$/.exec(line.trim());
    if (m && expected.has(m[1]!)) printed.set(m[1]!, { count: Number(m[2]), total: Number(m[3]), highRisk: Number(m[4]) });
  }
  t.is(printed.size, expected.size, out);
  for (const [user, e] of expected) t.deepEqual(printed.get(user), { count: e.count, total: Number(e.total.toFixed(2)), highRisk: e.highRisk }, user);
});
