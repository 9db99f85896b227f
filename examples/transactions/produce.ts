/**
 * Writes a batch of example transactions to a running NATS and exits: the
 * producer of deploy/compose.yml, usable against any cluster. It creates the
 * JetStream stream TRANSACTIONS first when it is missing (a node running the
 * job refuses to start without it), with as many replicas as the nodes use.
 *
 *   node dist/examples/transactions/produce.js [--nats <url,url,...>] [--count <n>] [--replicas <n>]
 *
 * Defaults come from the environment the nodes read: MILLRACE_NATS,
 * MILLRACE_NATS_REPLICAS, and DEMO_TRANSACTIONS for the count (20,000).
 */
import { parseArgs } from 'node:util';
import { nuid } from 'nats';
import { connect } from '../../index.js';
import { INPUT_STREAM } from './job.js';
import { isWorthProcessing } from './model.js';
import { ensureTransactionStream, publishTransactions, transactions } from './generator.js';

const { values } = parseArgs({
  options: { nats: { type: 'string' }, count: { type: 'string' }, replicas: { type: 'string' } },
});
const servers = (values.nats ?? process.env.MILLRACE_NATS ?? 'nats://127.0.0.1:4222').split(',').map((s) => s.trim()).filter(Boolean);
const count = Number(values.count ?? process.env.DEMO_TRANSACTIONS ?? 20_000);
const replicas = Number(values.replicas ?? (process.env.MILLRACE_NATS_REPLICAS || 1));
if (!Number.isInteger(count) || count < 0) throw new TypeError(`--count must be an integer >= 0, got ${values.count ?? process.env.DEMO_TRANSACTIONS}`);
if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new TypeError(`--replicas must be an integer from 1 to 5, got ${replicas}`);

const client = await connect({ servers, name: 'millrace-example-producer' });
try {
  await ensureTransactionStream(client.nats, { replicas });
  const txs = transactions(count, nuid.next().slice(-8));
  await publishTransactions(client.nats, txs);
  const info = await (await client.nats.jetstreamManager()).streams.info(INPUT_STREAM);
  console.log(
    `wrote ${txs.length} transactions (${txs.filter(isWorthProcessing).length} of at least 100) to JetStream stream ${INPUT_STREAM} ` +
      `(${info.config.num_replicas} replicas, ${info.state.messages} messages in all)`,
  );
} finally {
  await client.close();
}
