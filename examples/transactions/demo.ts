/**
 * `npm start`: a single-node cluster on the embedded defaults (a local
 * nats-server under ./.millrace) running the transactions job. It writes a
 * batch of transactions, waits until the job has processed them, prints
 * each user's running totals read back from the output stream, and keeps
 * running until Ctrl-C (or exits at once with --exit).
 */
import { AckPolicy, DeliverPolicy, nuid } from 'nats';
import { connect, decodeRecordValue, startNode } from '../../index.js';
import type { UserTotal } from './model.js';
import jobDefinition, { OUTPUT_STREAM } from './job.js';
import { isWorthProcessing } from './model.js';
import { ensureTransactionStream, publishTransactions, transactions } from './generator.js';

const COUNT = Number(process.env.DEMO_TRANSACTIONS ?? 20_000);
const exitWhenDone = process.argv.includes('--exit');

const node = await startNode({ dataDir: process.env.MILLRACE_DATA_DIR ?? './.millrace', logLevel: 'warn' });
const client = await connect({ servers: node.natsUrl });
await ensureTransactionStream(client.nats);
await node.runJob(jobDefinition);
console.log(`millrace node "${node.id}" is running job "${jobDefinition.name}" as ${node.tasks().length} tasks on ${node.natsUrl}`);
const runId = nuid.next().slice(-8);
const txs = transactions(COUNT, runId);
const started = Date.now();
await publishTransactions(client.nats, txs);
const expected = txs.filter(isWorthProcessing);
console.log(`wrote ${txs.length} transactions (${expected.length} of at least 100) to JetStream stream TRANSACTIONS`);

// Read the job's output until it has caught up with this run's last transaction per user.
const lastIdOfUser = new Map(expected.map((t) => [t.userId, t.transactionId]));
const latest = new Map<string, UserTotal>();
const jsm = await client.nats.jetstreamManager();
const consumer = await jsm.consumers.add(OUTPUT_STREAM, {
  ack_policy: AckPolicy.None,
  deliver_policy: DeliverPolicy.StartTime,
  opt_start_time: new Date(started - 1000).toISOString(),
  inactive_threshold: 60_000_000_000,
});
const messages = await client.nats.jetstream().consumers.get(OUTPUT_STREAM, consumer.name).then((c) => c.consume());
const done = [...lastIdOfUser.entries()];
const deadline = setTimeout(() => messages.stop(), 60_000);
for await (const m of messages) {
  const total = decodeRecordValue<UserTotal>(m.data);
  latest.set(total.user, total);
  if (done.every(([user, id]) => latest.get(user)?.lastTransaction === id)) break;
}
clearTimeout(deadline);
messages.stop();
const seconds = (Date.now() - started) / 1000;
console.log(`\nper-user running totals (stream "${OUTPUT_STREAM}"), ${seconds.toFixed(1)} s after the first write:\n`);
console.log('user      name            transactions       total   high-risk');
for (const t of [...latest.values()].sort((a, b) => a.user.localeCompare(b.user))) {
  console.log(
    `${t.user.padEnd(9)} ${(t.name ?? '(unknown)').padEnd(15)} ${String(t.count).padStart(12)} ${t.total.toFixed(2).padStart(12)} ${String(t.highRisk).padStart(10)}`,
  );
}
await client.close();
if (exitWhenDone) {
  await node.stop();
  process.exit(0);
}
console.log('\nthe node keeps running (state in ./.millrace); press Ctrl-C to stop it');
process.on('SIGINT', () => void node.stop().then(() => process.exit(0)));
process.on('SIGTERM', () => void node.stop().then(() => process.exit(0)));
