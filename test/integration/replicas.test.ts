/**
 * Replicated JetStream assets on a real three-server NATS cluster, started
 * from the configs deploy/compose.yml uses (deploy/nats/*.conf): the servers
 * form one cluster, and every call that may create a stream, a KV bucket or
 * the object store makes it with the replica count it is given (one copy
 * when given none, as before).
 */
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { connect, type NatsConnection, type StreamInfo } from 'nats';
import pino from 'pino';
import { ManifestStore } from '../../cluster/checkpoint/manifest-store.js';
import { RunStore } from '../../cluster/checkpoint/run-store.js';
import { SavepointStore } from '../../cluster/checkpoint/savepoints.js';
import { SnapshotStore } from '../../cluster/checkpoint/snapshot-store.js';
import { WorkerBlobTransfer } from '../../cluster/checkpoint/snapshot-transfer.js';
import { LeaderLease } from '../../cluster/leader/lease.js';
import { createStream } from '../../cluster/transport/streams.js';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js';
import { waitFor } from '../helpers/nats.js';

const CONFIGS = [1, 2, 3].map((i) => fileURLToPath(new URL(`../../../deploy/nats/nats-${i}.conf`, import.meta.url)));
const quiet = pino({ level: 'silent' });

let cluster: NatsCluster | undefined;
let nc: NatsConnection | undefined;
let counter = 0;
const unique = (prefix: string) => `${prefix}_${process.pid}_${++counter}`;

test.before(async () => {
  cluster = await startNatsCluster({ configs: CONFIGS, readyTimeoutMs: 20_000 });
  nc = await connect({ servers: [...cluster.urls] });
});
test.after.always(async () => {
  await nc?.close();
  await cluster?.cleanup();
});

/** The stream's info once its leader lists every follower (a new stream's peers may take a moment to report). */
async function replicated(stream: string, followers: number): Promise<StreamInfo> {
  const jsm = await nc!.jetstreamManager();
  let info: StreamInfo | undefined;
  await waitFor(async () => (info = await jsm.streams.info(stream)).cluster?.replicas?.length === followers, {
    timeoutMs: 10_000,
    message: `stream ${stream} did not report ${followers} followers`,
  });
  return info!;
}

test.serial('the deploy/nats configs form one JetStream cluster of three named servers', async (t) => {
  const names = await Promise.all(
    cluster!.servers.map(async (s) => ((await (await fetch(`${s.monitorUrl}/varz`)).json()) as { server_name: string; cluster: { name: string } })),
  );
  t.deepEqual(names.map((v) => v.server_name).sort(), ['nats-1', 'nats-2', 'nats-3']);
  t.deepEqual(new Set(names.map((v) => v.cluster.name)), new Set(['millrace']));
});

test.serial('createStream with replicas: 3 makes a stream with two followers', async (t) => {
  const name = unique('r3');
  await createStream(await nc!.jetstreamManager(), name, { partitions: 2, replicas: 3 });
  const info = await replicated(name, 2);
  t.is(info.config.num_replicas, 3);
  t.is(info.cluster!.replicas!.length, 2);
});

test.serial('createStream without replicas still makes one copy, in a cluster too', async (t) => {
  const name = unique('r1');
  await createStream(await nc!.jetstreamManager(), name, { partitions: 2 });
  const info = await (await nc!.jetstreamManager()).streams.info(name);
  t.is(info.config.num_replicas, 1);
  t.is(info.cluster?.replicas?.length ?? 0, 0);
});

test.serial('RunStore.open with replicas: 3 makes a KV bucket with two followers', async (t) => {
  const bucket = unique('runs');
  const runs = await RunStore.open(nc!.jetstream(), { bucket, replicas: 3 });
  t.is(await runs.next('job', ['a']), 1);
  const info = await replicated(`KV_${bucket}`, 2);
  t.is(info.config.num_replicas, 3);
  t.is(info.cluster!.replicas!.length, 2);
});

test.serial('every other store, the lease and the snapshot worker create their bucket with the replicas given', async (t) => {
  const js = nc!.jetstream();
  const opened: [stream: string, open: (bucket: string) => Promise<unknown>][] = [
    ['KV_', (bucket) => ManifestStore.open(js, { bucket, replicas: 3 })],
    ['KV_', (bucket) => SavepointStore.open(js, { bucket, replicas: 3 })],
    ['KV_', async (bucket) => (await LeaderLease.campaign(js, { nodeId: 'n1', bucket, replicas: 3 })).stop()],
    ['OBJ_', (bucket) => SnapshotStore.open(js, { bucket, replicas: 3 })],
    [
      'OBJ_',
      async (bucket) => {
        // The worker opens the bucket on its own connection: a put makes it.
        const transfer = new WorkerBlobTransfer({ servers: [...cluster!.urls], name: 'test-transfer', bucket, replicas: 3, logger: quiet });
        try {
          await transfer.put('probe', new Uint8Array([1, 2, 3]));
        } finally {
          await transfer.close();
        }
      },
    ],
  ];
  for (const [prefix, open] of opened) {
    const bucket = unique('b');
    await open(bucket);
    t.is((await replicated(`${prefix}${bucket}`, 2)).config.num_replicas, 3, `${prefix}${bucket}`);
  }
});

test.serial('a replica count outside 1..5 is a TypeError before anything is created', async (t) => {
  const jsm = await nc!.jetstreamManager();
  await t.throwsAsync(createStream(jsm, unique('bad'), { replicas: 6 }), { instanceOf: TypeError });
  await t.throwsAsync(RunStore.open(nc!.jetstream(), { bucket: unique('bad'), replicas: 0 }), { instanceOf: TypeError });
  t.throws(() => new WorkerBlobTransfer({ servers: [...cluster!.urls], name: 't', bucket: 'b', replicas: 2.5, logger: quiet }), { instanceOf: TypeError });
});
