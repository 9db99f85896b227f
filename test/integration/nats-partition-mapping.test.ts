/**
 * Proof that our partitioner is nats-server's: a server configured with the
 * subject mapping `ev.* -> in.{{partition(8,1)}}` must route every key to
 * the partition `partitionOf(key, 8)` computes. Mappings live in the server
 * config, which `startNatsServer` does not take, so this test writes a config
 * file and runs its own server.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { partitionOf } from '../../runtime/wire/partitioner.js';
import { tempDir, waitFor } from '../helpers/nats.js';

const PARTITIONS = 8;

test('nats-server partition() mapping agrees with partitionOf', async (t) => {
  const dir = await tempDir('millrace-test-mapping-');
  t.teardown(dir.cleanup);
  const config = join(dir.path, 'server.conf');
  writeFileSync(
    config,
    [
      'host: "127.0.0.1"',
      'port: -1', // a random free port, reported in the ports file
      `ports_file_dir: ${JSON.stringify(dir.path)}`,
      `log_file: ${JSON.stringify(join(dir.path, 'nats-server.log'))}`,
      `jetstream { store_dir: ${JSON.stringify(join(dir.path, 'js'))} }`,
      `mappings = { "ev.*": "in.{{partition(${PARTITIONS},1)}}" }`,
    ].join('\n'),
  );
  const server = spawn('nats-server', ['-c', config], { stdio: 'ignore' });
  const exited = new Promise((resolve) => server.once('close', resolve));
  t.teardown(async () => {
    server.kill('SIGTERM');
    await exited;
  });

  let url: string | undefined;
  await waitFor(
    () => {
      const file = readdirSync(dir.path).find((f) => f.endsWith('.ports'));
      if (!file) return server.exitCode !== null; // stop waiting if it died
      try {
        url = (JSON.parse(readFileSync(join(dir.path, file), 'utf8')) as { nats: string[] }).nats[0];
      } catch {
        return false; // file not fully written yet
      }
      return url !== undefined;
    },
    { timeoutMs: 10_000, message: 'nats-server with the mapping config did not start' },
  );
  // Never fall through to connect() without a URL: its default is the system server on 4222.
  if (!url) return t.fail(`nats-server exited early; see ${join(dir.path, 'nats-server.log')}`);

  const nc: NatsConnection = await connect({ servers: url });
  t.teardown(() => nc.close());

  // Keys must be single subject tokens: no '.', '*', '>' or whitespace. Mix ASCII and multi-byte.
  const keys = Array.from({ length: 200 }, (_, i) =>
    i % 4 === 0 ? `clé-${i}` : i % 4 === 1 ? `日本-${i}` : i % 4 === 2 ? `user-${i}` : String(i * 7919),
  );
  const landed = new Map<string, number>();
  const sub = nc.subscribe('in.*', {
    callback: (err, msg) => {
      if (err) return;
      landed.set(new TextDecoder().decode(msg.data), Number(msg.subject.split('.')[1]));
    },
  });
  await nc.flush(); // the subscription is registered before we publish

  const encoder = new TextEncoder();
  for (const key of keys) nc.publish(`ev.${key}`, encoder.encode(key));
  await nc.flush();
  await waitFor(() => landed.size === keys.length, {
    timeoutMs: 10_000,
    message: `only some mapped messages arrived`,
  });
  sub.unsubscribe();

  const mismatches = keys.filter((key) => landed.get(key) !== partitionOf(key, PARTITIONS));
  t.deepEqual(mismatches, [], 'keys the server mapped to a different partition');
  // Every partition was hit, so the check is not trivially satisfied by one bucket.
  t.is(new Set(landed.values()).size, PARTITIONS);
});
