/**
 * Starts and stops a local `nats-server` with JetStream: the embedded default
 * of a node with no NATS URL configured, and the real server every
 * integration test and benchmark starts for itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes, millraceError } from '../../errors.js';

export interface NatsServerOptions {
  /** Directory for the JetStream store, the ports file and the server log. Created when missing. */
  dir: string;
  /**
   * Client port on 127.0.0.1. `0` lets the server pick a free one; pass the
   * port of an earlier run to restart a server where its clients expect it.
   * @default 0
   */
  port?: number;
  /** The executable. @default 'nats-server' (found on PATH) */
  binary?: string;
  /** How long to wait for the server to listen. @default 10000 */
  startTimeoutMs?: number;
}

export const DEFAULT_NATS_SERVER_BINARY = 'nats-server';
const DEFAULT_START_TIMEOUT_MS = 10_000;

export interface NatsServerProcess {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly storeDir: string;
  readonly logFile: string;
  readonly process: ChildProcess;
  /** Sends `signal` (default SIGTERM) and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Explains how to get `nats-server` when it is not installed. */
export function natsServerMissingError(binary: string) {
  return millraceError(
    ErrorCodes.NATS_SERVER_MISSING,
    `"${binary}" was not found on PATH. The embedded default needs a local nats-server with JetStream: ` +
      `install it (Debian/Ubuntu: "apt-get install -y nats-server"; elsewhere see https://docs.nats.io/running-a-nats-service/introduction/installation), ` +
      `or point millrace at a running server with --nats nats://host:4222.`,
  );
}

/** Whether `binary` can be executed. */
export function natsServerAvailable(binary = DEFAULT_NATS_SERVER_BINARY): boolean {
  const probe = spawnSync(binary, ['--version'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

export async function startNatsServer(options: NatsServerOptions): Promise<NatsServerProcess> {
  const binary = options.binary ?? DEFAULT_NATS_SERVER_BINARY;
  if (!natsServerAvailable(binary)) throw natsServerMissingError(binary);
  const storeDir = join(options.dir, 'jetstream-store');
  const portsDir = join(options.dir, 'ports');
  const logFile = join(options.dir, 'nats-server.log');
  mkdirSync(storeDir, { recursive: true });
  rmSync(portsDir, { recursive: true, force: true });
  mkdirSync(portsDir, { recursive: true });

  const port = options.port && options.port > 0 ? options.port : -1;
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, '--ports_file_dir', portsDir, '-l', logFile];
  const child = spawn(binary, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitCode: number | null | undefined;
  child.once('exit', (code) => {
    exitCode = code;
  });

  const deadline = Date.now() + (options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  let url: string | undefined;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) break;
    url = readPortsFile(portsDir);
    if (url) break;
    await sleep(20);
  }
  if (!url) {
    child.kill('SIGKILL');
    await exited;
    throw millraceError(
      ErrorCodes.NATS_SERVER_START,
      `nats-server did not start (exit code ${exitCode ?? 'none'}); see its log at ${logFile}`,
      { details: { logFile, args } },
    );
  }
  const listening = Number(new URL(url).port);
  return {
    url,
    port: listening,
    pid: child.pid!,
    storeDir,
    logFile,
    process: child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

function readPortsFile(dir: string): string | undefined {
  const file = readdirSync(dir).find((f) => f.endsWith('.ports'));
  if (!file) return undefined;
  try {
    const ports = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nats?: string[] };
    return ports.nats?.[0];
  } catch {
    return undefined; // written but not complete yet
  }
}
