/**
 * A real NATS cluster for integration tests: one nats-server with JetStream
 * per config file given (deploy/nats/*.conf), each on random loopback ports
 * and in its own temp dir, joined by cluster routes.
 *
 * The files are used as they are but for `store_dir`, which is pointed at
 * the server's temp dir in a copy (nats-server refuses `-sd` next to a
 * `store_dir` in the file). Addresses come on the command line, which
 * nats-server lets win over the file: the client and monitoring ports are
 * picked by the server, the route ports here, as every server must know
 * them all before it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, join } from 'node:path';
import { natsServerAvailable, natsServerMissingError } from '../../cluster/transport/nats-server-process.js';
import { tempDir, waitFor } from './nats.js';

export interface NatsClusterOptions {
  /** One config file per server; each must set `store_dir` once. */
  readonly configs: readonly string[];
  /** @default 'nats-server' (found on PATH) */
  readonly binary?: string;
  /** How long to wait until every server sees the others and a JetStream meta leader. @default 30000 */
  readonly readyTimeoutMs?: number;
}

export interface NatsClusterServer {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** `http://127.0.0.1:<port>`: /healthz, /jsz, /routez. */
  readonly monitorUrl: string;
  readonly logFile: string;
  readonly process: ChildProcess;
}

export interface NatsCluster {
  readonly servers: readonly NatsClusterServer[];
  /** Every server's client URL, to connect to the cluster as a whole. */
  readonly urls: readonly string[];
  /** Kills every server (SIGKILL: the store is thrown away) and removes the temp dir. Safe to call twice. */
  cleanup(): Promise<void>;
}

const DEFAULT_READY_TIMEOUT_MS = 30_000;
const STORE_DIR = /^(\s*store_dir\s*[:=]\s*).*$/m;

/** Starts one server per config file and waits until they form one JetStream cluster. */
export async function startNatsCluster(options: NatsClusterOptions): Promise<NatsCluster> {
  const binary = options.binary ?? 'nats-server';
  if (!natsServerAvailable(binary)) throw natsServerMissingError(binary);
  const root = await tempDir('millrace-cluster-');
  const children: ChildProcess[] = [];
  const killAll = () => children.filter(running).forEach((child) => child.kill('SIGKILL'));
  // Should the test process exit before cleanup, its servers go with it.
  process.once('exit', killAll);
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      const exits = children.filter(running).map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
      killAll();
      await Promise.all(exits);
      process.removeListener('exit', killAll);
      await root.cleanup();
    })());

  try {
    const routePorts = await freePorts(options.configs.length);
    const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`).join(',');
    const started = options.configs.map((config, i) => {
      const dir = join(root.path, `s${i + 1}`);
      const portsDir = join(dir, 'ports');
      mkdirSync(portsDir, { recursive: true });
      const text = readFileSync(config, 'utf8');
      if (text.match(new RegExp(STORE_DIR.source, 'gm'))?.length !== 1) throw new Error(`${config} must set store_dir exactly once`);
      const copy = join(dir, basename(config));
      writeFileSync(copy, text.replace(STORE_DIR, (_, key: string) => `${key}${JSON.stringify(dir)}`));
      const logFile = join(dir, 'nats-server.log');
      const args = ['-c', copy, '-a', '127.0.0.1', '-p', '-1', '-m', '-1', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes];
      const child = spawn(binary, [...args, '--ports_file_dir', portsDir, '-l', logFile], { stdio: 'ignore' });
      children.push(child);
      return { child, portsDir, logFile };
    });

    const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    const logs = started.map((s) => s.logFile).join(', ');
    const servers: NatsClusterServer[] = [];
    for (const { child, portsDir, logFile } of started) {
      let ports: { nats: string; monitoring: string } | undefined;
      await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}; see ${logFile}`);
          return (ports = readPorts(portsDir)) !== undefined;
        },
        { timeoutMs, message: `nats-server did not listen; see ${logFile}` },
      );
      servers.push({ url: ports!.nats, monitorUrl: ports!.monitoring, logFile, process: child });
    }
    await waitFor(async () => (await Promise.all(servers.map((s) => formed(s, servers.length)))).every(Boolean), {
      timeoutMs,
      intervalMs: 100,
      message: `the servers did not form one JetStream cluster; see ${logs}`,
    });
    return { servers, urls: servers.map((s) => s.url), cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Whether `server` has a route to every other one and knows the JetStream meta leader of a cluster of `size`. */
async function formed(server: NatsClusterServer, size: number): Promise<boolean> {
  try {
    const routez = (await (await fetch(`${server.monitorUrl}/routez`)).json()) as { num_routes?: number };
    const jsz = (await (await fetch(`${server.monitorUrl}/jsz`)).json()) as { meta_cluster?: { leader?: string; cluster_size?: number } };
    return routez.num_routes === size - 1 && Boolean(jsz.meta_cluster?.leader) && jsz.meta_cluster?.cluster_size === size;
  } catch {
    return false; // not serving monitoring yet
  }
}

function readPorts(dir: string): { nats: string; monitoring: string } | undefined {
  const file = readdirSync(dir).find((f) => f.endsWith('.ports'));
  if (!file) return undefined;
  try {
    const ports = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nats?: string[]; monitoring?: string[] };
    return ports.nats?.[0] && ports.monitoring?.[0] ? { nats: ports.nats[0], monitoring: ports.monitoring[0] } : undefined;
  } catch {
    return undefined; // written but not complete yet
  }
}

/** `count` distinct loopback ports free right now (held together, so they differ, then released). */
async function freePorts(count: number): Promise<number[]> {
  const held = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = held.map((server) => (server.address() as { port: number }).port);
  await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
