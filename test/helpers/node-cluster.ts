/**
 * The fixture of a test file that starts millrace node processes: one
 * nats-server, connection and JetStream manager for the file; the logs of
 * the nodes a passed test started removed after it; and at the end every
 * node killed, the server stopped and the temp dirs the tests made removed.
 * Read `nats`, `nc` and `jsm` inside tests and later hooks only.
 */
import type { ExecutionContext, TestFn } from 'ava';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { nodeLogs, type NodeLogs } from '../fixtures/node-logs.js';
import { setupNats, type NatsFixture, type TempDir } from './nats.js';
import { killAllNodes } from './node-process.js';

export interface NodeTestFixture {
  readonly nats: NatsFixture;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** Track each node a test starts: its log is removed if the test passes. */
  readonly logs: NodeLogs;
  /** Temp dirs to remove after the file's tests. */
  readonly dirs: TempDir[];
}

/**
 * @param setup runs in the same `test.before` once the server is up (ava
 *   runs a file's `before` hooks concurrently, so a separate hook could not
 *   use the server)
 */
export function nodeTestFixture(test: TestFn, setup?: (fixture: NodeTestFixture, t: ExecutionContext) => Promise<void>): NodeTestFixture {
  let started: { nats: NatsFixture; nc: NatsConnection; jsm: JetStreamManager } | undefined;
  const dirs: TempDir[] = [];
  const logs = nodeLogs();
  test.before(async (t) => {
    const nats = await setupNats();
    const nc = await connect({ servers: nats.url });
    started = { nats, nc, jsm: await nc.jetstreamManager() };
    await setup?.(fixture, t);
  });
  test.afterEach.always((t) => logs.settle(t));
  test.after.always(async () => {
    await killAllNodes();
    await started?.nc.close();
    await started?.nats.cleanup();
    await Promise.all(dirs.map((d) => d.cleanup()));
  });
  const get = () => {
    if (!started) throw new Error('the nats-server of this file is not started yet: use it inside a test');
    return started;
  };
  const fixture: NodeTestFixture = {
    get nats() {
      return get().nats;
    },
    get nc() {
      return get().nc;
    },
    get jsm() {
      return get().jsm;
    },
    logs,
    dirs,
  };
  return fixture;
}
