/**
 * The one setup/cleanup helper for integration tests: every test file starts
 * its own real nats-server with JetStream on a random loopback port (never
 * the system server on 4222) and names its streams and subjects uniquely.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestFn } from 'ava';
import { connect, type NatsConnection } from 'nats';
import { startNatsServer, type NatsServerProcess } from '../../cluster/transport/nats-server-process.js';

export interface NatsFixture {
  /** `nats://127.0.0.1:<port>`; stays the same across `restart()`. */
  readonly url: string;
  readonly port: number;
  /** The fixture's temp dir (JetStream store, server log). */
  readonly dir: string;
  /** The running server process (a new one after each `restart()`). */
  readonly server: NatsServerProcess;
  /** A name unique in this process, safe as a stream name and a subject token ([A-Za-z0-9_]). */
  unique(prefix: string): string;
  /**
   * Stops the server with `signal` (default SIGKILL: a crash) and starts it
   * again on the same port and store, so connected clients reconnect and
   * JetStream recovers its streams.
   */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server (SIGTERM); `restart()` can start it again. */
  stop(): Promise<void>;
  /** Stops the server and removes the temp dir. Safe to call twice. */
  cleanup(): Promise<void>;
}

let counter = 0;

/** Starts a fresh nats-server with JetStream in a new temp dir. */
export async function setupNats(): Promise<NatsFixture> {
  const { path: dir, cleanup: removeDir } = await tempDir('millrace-test-');
  let server: NatsServerProcess;
  try {
    server = await startNatsServer({ dir, port: 0 });
  } catch (err) {
    await removeDir();
    throw err;
  }
  const port = server.port;
  let stopped = false;
  // Plain closures, not `this`, so `test.after.always(fixture.cleanup)` works.
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop('SIGTERM');
  };

  return {
    url: server.url,
    port,
    dir,
    get server() {
      return server;
    },
    unique(prefix: string) {
      const safe = prefix.replace(/[^A-Za-z0-9_]/g, '_');
      return `${safe}_${++counter}_${randomBytes(4).toString('hex')}`;
    },
    async restart(signal: NodeJS.Signals = 'SIGKILL') {
      if (!stopped) await server.stop(signal);
      // The same port may refuse to bind for a moment after a kill; retry briefly.
      for (let attempt = 0; ; attempt++) {
        try {
          server = await startNatsServer({ dir, port });
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await sleep(200);
        }
      }
      stopped = false;
    },
    stop,
    async cleanup() {
      await stop();
      await removeDir();
    },
  };
}

/** A fresh nats-server and one client connection to it; `cleanup()` closes the connection first. */
export interface ConnectedNats {
  readonly nats: NatsFixture;
  readonly nc: NatsConnection;
  cleanup(): Promise<void>;
}

export async function setupConnectedNats(): Promise<ConnectedNats> {
  const nats = await setupNats();
  try {
    const nc = await connect({ servers: nats.url });
    return {
      nats,
      nc,
      async cleanup() {
        await nc.close();
        await nats.cleanup();
      },
    };
  } catch (err) {
    await nats.cleanup();
    throw err;
  }
}

/**
 * One nats-server and connection for every test of a file: started in
 * `test.before`, closed in `test.after.always`. Read `nats` and `nc` inside
 * tests only.
 */
export function natsForFile(test: TestFn): { readonly nats: NatsFixture; readonly nc: NatsConnection } {
  let fixture: ConnectedNats | undefined;
  test.before(async () => {
    fixture = await setupConnectedNats();
  });
  test.after.always(() => fixture?.cleanup());
  const started = (): ConnectedNats => {
    if (!fixture) throw new Error('the nats-server of this file is not started yet: use it inside a test');
    return fixture;
  };
  return {
    get nats() {
      return started().nats;
    },
    get nc() {
      return started().nc;
    },
  };
}

export interface WaitForOptions {
  /** @default 30000 */
  timeoutMs?: number;
  /** @default 50 */
  intervalMs?: number;
  /** The rejection message on timeout. @default 'waitFor timed out' */
  message?: string;
}

/** Polls `predicate` until it returns true; rejects with `message` after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, intervalMs = 50, message = 'waitFor timed out' }: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline) throw new Error(`${message} (after ${timeoutMs} ms)`);
    await sleep(intervalMs);
  }
}

export interface TempDir {
  readonly path: string;
  /** Removes the directory and everything in it. */
  cleanup(): Promise<void>;
}

/** Creates a fresh directory under the OS temp dir, named `<prefix>XXXXXX`. */
export async function tempDir(prefix = 'millrace-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}
