/**
 * The cluster's KV records on a real nats-server (decision 005): the job
 * registry lists every job and keeps cancellations; an assignment is written
 * with compare-and-set, so a coordinator that did not see the last write is
 * refused; the membership watch sees joins, updates, graceful leaves, and
 * takes a member that stopped heartbeating for gone after the TTL.
 */
import test from 'ava';
import pino from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { AssignmentStore, type JobAssignment } from '../../cluster/assignment/assignment-store.js';
import { JobRegistry, type JobDescriptor } from '../../cluster/jobs/job-registry.js';
import { Membership, MemberWatch, openMemberBucket, type MemberChange, type MemberInfo } from '../../cluster/membership/members.js';
import { natsForFile, waitFor } from '../helpers/nats.js';

const server = natsForFile(test);
const logger = pino({ level: 'silent' });

function descriptor(job: string): JobDescriptor {
  return { job, tasks: [`${job}/s0/0`], internalInputs: [], stages: [{ id: 's0', input: 'in', output: 'out', tasks: 1 }], intervalMs: 1000, timeoutMs: 60000, status: 'running', updatedBy: 'n', updatedAt: 0 };
}

test('the registry lists every job, and a cancelled job stays listed as cancelled until submitted again', async (t) => {
  const registry = await JobRegistry.open(server.nc.jetstream(), { bucket: server.nats.unique('jobs') });
  for (const job of ['c', 'a', 'b']) await registry.submit(descriptor(job));
  t.deepEqual((await registry.list()).map((j) => j.job), ['a', 'b', 'c']);
  t.true(await registry.cancel('b', 'cli'));
  t.false(await registry.cancel('nosuch', 'cli'));
  t.is((await registry.get('b'))?.status, 'cancelled');
  await registry.submit(descriptor('b'));
  t.is((await registry.get('b'))?.status, 'running', 'a node that starts the job again submits it again');
});

test('an assignment is written with compare-and-set: a coordinator that missed a write is refused with MR_CHECKPOINT_CONFLICT', async (t) => {
  const store = await AssignmentStore.open(server.nc.jetstream(), { bucket: server.nats.unique('assign') });
  const record = (leaderEpoch: number, version: number): JobAssignment => ({
    job: 'j',
    leaderEpoch,
    generation: 1,
    version,
    checkpoint: 0,
    tasks: { 'j/s0/0': 'a' },
    nodes: ['a'],
    instances: { a: 'a-1' },
    writtenAt: Date.now(),
  });
  t.deepEqual(await store.current('j'), { record: undefined, revision: 0 });
  const first = await store.publish(record(5, 1), 0);
  const second = await store.publish(record(5, 2), first);
  await t.throwsAsync(store.publish(record(4, 2), first), { code: 'MR_CHECKPOINT_CONFLICT' }, 'an older leader still holding the first revision');
  await t.throwsAsync(store.publish(record(4, 1), 0), { code: 'MR_CHECKPOINT_CONFLICT' }, 'creating a record that exists');
  const current = await store.current('j');
  t.is(current.revision, second);
  t.is(current.record?.version, 2);
});

test('the membership watch sees joins, updates and graceful leaves, and expires a silent member after the TTL', async (t) => {
  const bucket = server.nats.unique('members');
  const js = server.nc.jetstream();
  const changes: [MemberChange, string][] = [];
  const watch = await MemberWatch.open(js, { bucket, ttlMs: 1500, checkMs: 100, onChange: (c, m) => changes.push([c, m.id]) }, logger);
  t.teardown(() => watch.close());
  const info = (id: string): MemberInfo => ({ id, instance: `${id}-1`, address: 'h:1', capacity: null, version: '0', startedAt: 0, jobs: ['j'], leaving: false });
  const a = await Membership.join(js, info('a'), { bucket, heartbeatMs: 200, ttlMs: 1500 }, logger);
  // b writes its entry once and never again, as a node killed right after it joined.
  await (await openMemberBucket(js, { bucket, ttlMs: 1500 })).put('b', new TextEncoder().encode(JSON.stringify(info('b'))));
  await waitFor(() => watch.members().size === 2, { timeoutMs: 5000, message: 'both members seen' });
  await a.update({ leaving: true });
  await waitFor(() => watch.members().get('a')?.info.leaving === true, { timeoutMs: 5000, message: 'leaving seen' });
  await a.leave();
  await waitFor(() => !watch.members().has('a'), { timeoutMs: 5000, message: 'graceful leave seen' });
  const c = await Membership.join(js, info('c'), { bucket, heartbeatMs: 200, ttlMs: 1500 }, logger);
  t.teardown(() => c.leave());
  await waitFor(() => !watch.members().has('b'), { timeoutMs: 5000, message: 'silent member expired' });
  t.deepEqual(changes.slice(0, 4), [
    ['joined', 'a'],
    ['joined', 'b'],
    ['updated', 'a'],
    ['left', 'a'],
  ]);
  t.deepEqual(changes.slice(4).sort(), [['expired', 'b'], ['joined', 'c']], 'b expires (c may join before or after)');
  await sleep(1000);
  t.true(watch.members().has('c'), 'a member that heartbeats stays, past the TTL');
});
