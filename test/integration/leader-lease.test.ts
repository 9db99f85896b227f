/**
 * The coordinator's leader lease on a real nats-server: one leader at a
 * time, a growing epoch, handover on release and on expiry (within the
 * TTL), a stale leader stepping down, and a restarted node taking its own
 * lease back without waiting out the TTL.
 */
import test from 'ava';
import { connect, type NatsConnection } from 'nats';
import { LeaderLease, type LeaseStatus } from '../../cluster/leader/lease.js';
import { setupNats, waitFor, type NatsFixture } from '../helpers/nats.js';

let nats: NatsFixture;
const connections: NatsConnection[] = [];
const leases: LeaderLease[] = [];

test.before(async () => {
  nats = await setupNats();
});
test.after.always(async () => {
  for (const l of leases) await l.stop();
  for (const nc of connections) await nc.close();
  await nats?.cleanup();
});

async function campaign(nodeId: string, bucket: string, ttlMs = 1500): Promise<{ lease: LeaderLease; changes: LeaseStatus[] }> {
  const nc = await connect({ servers: nats.url });
  connections.push(nc);
  const changes: LeaseStatus[] = [];
  const lease = await LeaderLease.campaign(nc.jetstream(), { nodeId, bucket, ttlMs, onChange: (s) => changes.push(s) });
  leases.push(lease);
  return { lease, changes };
}

const leaders = (...ls: LeaderLease[]) => ls.filter((l) => l.isLeader()).length;

test.serial('exactly one of three campaigning nodes leads, and followers know who', async (t) => {
  const bucket = nats.unique('lease');
  const a = await campaign('a', bucket);
  const b = await campaign('b', bucket);
  const c = await campaign('c', bucket);
  t.is(a.lease.current.role, 'leader');
  for (const f of [b, c]) {
    await waitFor(() => f.lease.current.role === 'follower' && (f.lease.current as { leader?: string }).leader === 'a', {
      timeoutMs: 3000,
      message: 'followers learn the leader',
    });
  }
  // Several renewal rounds later still exactly one leader, with the same epoch.
  const epoch = (a.lease.current as { epoch: number }).epoch;
  await new Promise((r) => setTimeout(r, 2000));
  t.is(leaders(a.lease, b.lease, c.lease), 1);
  t.deepEqual(a.lease.current, { role: 'leader', epoch });
  t.is((b.lease.current as { epoch?: number }).epoch, epoch);
});

test.serial('a leader that stops hands over at once, under a higher epoch', async (t) => {
  const bucket = nats.unique('lease');
  const a = await campaign('a', bucket);
  const b = await campaign('b', bucket);
  const first = (a.lease.current as { epoch: number }).epoch;
  await a.lease.stop();
  await waitFor(() => b.lease.isLeader(), { timeoutMs: 3000, message: 'b takes over' });
  t.true((b.lease.current as { epoch: number }).epoch > first);
});

test.serial('a leader that goes silent loses the lease by expiry, and steps down by its own clock', async (t) => {
  const bucket = nats.unique('lease');
  const a = await campaign('a', bucket, 1000);
  const b = await campaign('b', bucket, 1000);
  const first = (a.lease.current as { epoch: number }).epoch;
  // Cut a off from the server: its renewals fail, it must stop claiming leadership.
  await connections[connections.length - 2]!.close();
  await waitFor(() => !a.lease.isLeader(), { timeoutMs: 2000, message: 'a steps down' });
  await waitFor(() => b.lease.isLeader(), { timeoutMs: 10_000, message: 'b wins after the TTL' });
  t.true((b.lease.current as { epoch: number }).epoch > first);
  t.is(leaders(a.lease, b.lease), 1);
});

test.serial('a follower takes an expired lease within the TTL of the last renewal, not a polling round later', async (t) => {
  const bucket = nats.unique('lease');
  const ttlMs = 2000;
  await campaign('a', bucket, ttlMs);
  const b = await campaign('b', bucket, ttlMs);
  await waitFor(() => b.lease.current.role === 'follower' && (b.lease.current as { leader?: string }).leader === 'a', { timeoutMs: 3000 });
  // a dies without a word: its connection closes, its lease is never renewed again.
  const cutAt = Date.now();
  await connections[connections.length - 2]!.close();
  await waitFor(() => b.lease.isLeader(), { timeoutMs: 3 * ttlMs, intervalMs: 5, message: 'b takes over' });
  const takeoverMs = Date.now() - cutAt;
  t.log(`takeover ${takeoverMs} ms after the last possible renewal (TTL ${ttlMs} ms)`);
  t.true(takeoverMs <= ttlMs + 200, `took over ${takeoverMs} ms after the cut`);
});

test.serial('a restarted node takes its own lease back at once, under a higher epoch; two live processes with one id do not flap', async (t) => {
  const bucket = nats.unique('lease');
  const first = await campaign('n', bucket, 5000);
  const firstEpoch = (first.lease.current as { epoch: number }).epoch;
  // The "restart": a new process with the same node id, while the old one's lease is far from expiry.
  const startedAt = Date.now();
  const second = await campaign('n', bucket, 5000);
  t.is(second.lease.current.role, 'leader', 'the new process leads right after its first round');
  t.true(Date.now() - startedAt < 1000, 'without waiting out the 5 s TTL');
  const secondEpoch = (second.lease.current as { epoch: number }).epoch;
  t.true(secondEpoch > firstEpoch, 'under a higher epoch, which fences the old process');
  // The old process is still alive (a misconfiguration): it steps down and does not take the lease back.
  await waitFor(() => first.lease.current.role === 'follower', { timeoutMs: 5000, message: 'the old process steps down' });
  await new Promise((r) => setTimeout(r, 3000));
  t.deepEqual(second.lease.current, { role: 'leader', epoch: secondEpoch }, 'no flapping');
  t.false(first.changes.slice(1).some((c) => c.role === 'leader'), 'the old process never led again');
});

test.serial('stop() during a renewal waits for it, frees the lease and reports nothing after "stopped"', async (t) => {
  const bucket = nats.unique('lease');
  for (let i = 0; i < 15; i++) {
    const nc = await connect({ servers: nats.url });
    connections.push(nc);
    const changes: LeaseStatus[] = [];
    // Renewing every 5 ms: a stop lands in the middle of a round most of the time.
    const lease = await LeaderLease.campaign(nc.jetstream(), { nodeId: `n${i}`, bucket, ttlMs: 5000, intervalMs: 5, onChange: (s) => changes.push(s) });
    t.is(lease.current.role, 'leader');
    await new Promise((r) => setTimeout(r, 3 + (i % 5) * 7));
    await lease.stop();
    await new Promise((r) => setTimeout(r, 20));
    t.deepEqual(changes.at(-1), { role: 'stopped' }, `round ${i}: nothing reported after stopped`);
    const kv = await nc.jetstream().views.kv(bucket);
    const entry = await kv.get('coordinator');
    t.true(!entry || entry.operation !== 'PUT', `round ${i}: the lease is free right after stop`);
  }
});
