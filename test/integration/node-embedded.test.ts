/**
 * The embedded default: `millrace node start` with no --nats runs its own
 * nats-server under `<dataDir>/nats`, stops it on SIGTERM, and after a
 * SIGKILL of the node a restarted node stops the orphaned server before it
 * starts a new one, so two servers never share one JetStream store.
 *
 * Processes are found through /proc (Linux), as the orphan is not our child.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
import { setupNats, tempDir, waitFor, type TempDir } from '../helpers/nats.js';
import { killAllNodes, spawnNode, waitForNodeStarted, type NodeProcess } from '../helpers/node-process.js';
import { nodeLogs } from '../fixtures/node-logs.js';

const dirs: TempDir[] = [];
/** nats-server pids seen in a test: any still running at the end are killed. */
const serverPids = new Set<number>();
const logs = nodeLogs();

test.afterEach.always((t) => logs.settle(t));

test.after.always(async () => {
  await killAllNodes();
  for (const pid of serverPids) {
    if (isRunning(pid) && cmdline(pid).includes('nats-server')) process.kill(pid, 'SIGKILL');
  }
  await Promise.all(dirs.map((d) => d.cleanup()));
});

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** True while `pid` exists and is not a zombie (an exited process nobody reaped yet). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // Field 3 of /proc/<pid>/stat, after the parenthesised command name.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Live nats-server processes whose JetStream store is under `storeDir`. */
function serversOnStore(storeDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const cmd = cmdline(pid);
    if (cmd.includes('nats-server') && cmd.includes(storeDir) && isRunning(pid)) pids.push(pid);
  }
  return pids;
}

function readPidFile(dataDir: string): number {
  return Number(readFileSync(join(dataDir, 'nats', 'nats-server.pid'), 'utf8'));
}

function startEmbeddedNode(dataDir: string): NodeProcess {
  // No --nats and no MILLRACE_NATS: the node must start its own server.
  return logs.track(spawnNode({ args: ['node', 'start', '--data-dir', dataDir, '--node-id', 'embedded-test'], env: { MILLRACE_NATS: '' } }));
}

interface Started {
  node: NodeProcess;
  url: string;
  pid: number;
}

/** Starts a node, waits for its embedded server and for "node started"; checks the server serves JetStream. */
async function startAndCheck(t: ExecutionContext, dataDir: string): Promise<Started> {
  const node = startEmbeddedNode(dataDir);
  const line = await node.waitForLog((e) => e.msg === 'embedded nats-server started', 30_000);
  const url = String(line.url);
  t.regex(url, /^nats:\/\/127\.0\.0\.1:\d+$/, 'the log line carries the loopback URL');
  const started = await waitForNodeStarted(node, 30_000);
  t.is(started.nats, url, 'the node uses the embedded server');
  const pid = readPidFile(dataDir);
  serverPids.add(pid);
  t.true(isRunning(pid) && cmdline(pid).includes('nats-server'), `pid file names a running nats-server (${pid})`);

  const nc = await connect({ servers: url, maxReconnectAttempts: 0 });
  try {
    const info = await (await nc.jetstreamManager()).getAccountInfo();
    t.true(info.limits !== undefined, 'the embedded server has JetStream');
  } finally {
    await nc.close();
  }
  return { node, url, pid };
}

test.serial('with no --nats the node runs an embedded nats-server and stops it on SIGTERM', async (t) => {
  t.timeout(60_000);
  const dir = await tempDir('millrace-embedded-');
  dirs.push(dir);
  const { node, pid } = await startAndCheck(t, dir.path);

  node.kill('SIGTERM');
  const exit = await node.waitForExit(20_000);
  t.deepEqual(exit, { code: 0, signal: null }, 'graceful exit on SIGTERM');
  await waitFor(() => !isRunning(pid), { timeoutMs: 5_000, message: `embedded nats-server ${pid} outlived the node` });
  t.deepEqual(serversOnStore(join(dir.path, 'nats')), [], 'no nats-server left on the store');
  t.false(existsSync(join(dir.path, 'nats', 'nats-server.pid')), 'the pid file is removed on a clean stop');
});

test.serial('after a SIGKILL of the node, a restarted node stops the orphaned server and starts', async (t) => {
  t.timeout(90_000);
  const dir = await tempDir('millrace-embedded-');
  dirs.push(dir);
  const store = join(dir.path, 'nats');
  const first = await startAndCheck(t, dir.path);

  first.node.kill('SIGKILL');
  await first.node.waitForExit(10_000);
  // The premise: a SIGKILLed node leaves its server running.
  t.true(isRunning(first.pid), `the orphaned nats-server ${first.pid} still runs after the node was killed`);

  const restartedAt = Date.now();
  const second = await startAndCheck(t, dir.path);
  t.log(`restarted node was up ${Date.now() - restartedAt} ms after spawn`);
  t.not(second.pid, first.pid, 'a new server');
  t.false(isRunning(first.pid), 'the orphan was stopped');
  t.deepEqual(serversOnStore(store), [second.pid], 'exactly one nats-server on the store');

  second.node.kill('SIGTERM');
  t.deepEqual(await second.node.waitForExit(20_000), { code: 0, signal: null });
  await waitFor(() => !isRunning(second.pid), { timeoutMs: 5_000, message: `embedded nats-server ${second.pid} outlived the node` });
  t.deepEqual(serversOnStore(store), []);
});

// A stale pid file may name another nats-server after a reboot (the system's,
// another node's): a starting node must only stop a server on its own store.
test.serial('a stale pid file naming an unrelated nats-server does not make the node stop it', async (t) => {
  t.timeout(60_000);
  const other = await setupNats(); // stands in for a server on another store that got the recycled pid
  t.teardown(other.cleanup);
  const dir = await tempDir('millrace-embedded-');
  dirs.push(dir);
  mkdirSync(join(dir.path, 'nats'), { recursive: true });
  writeFileSync(join(dir.path, 'nats', 'nats-server.pid'), String(other.server.pid));

  const { node } = await startAndCheck(t, dir.path);
  t.true(isRunning(other.server.pid), `the unrelated nats-server ${other.server.pid} was stopped by the starting node`);
  node.kill('SIGTERM');
  t.deepEqual(await node.waitForExit(20_000), { code: 0, signal: null });
});
