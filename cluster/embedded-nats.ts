/**
 * The embedded default: with no NATS URL configured, a node runs its own
 * `nats-server` with JetStream under `<dataDir>/nats`. The server's pid is
 * kept in a file so that a node restarted after a SIGKILL stops the orphaned
 * server of its previous life before starting one on the same store.
 */
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNatsServer, type NatsServerProcess } from './transport/nats-server-process.js';

export interface EmbeddedNatsOptions {
  dataDir: string;
  port: number;
  binary: string;
}

export async function startEmbeddedNats(options: EmbeddedNatsOptions): Promise<NatsServerProcess> {
  const dir = join(options.dataDir, 'nats');
  const pidFile = join(dir, 'nats-server.pid');
  await stopOrphan(pidFile, join(dir, 'jetstream-store'));
  const server = await startNatsServer({ dir, port: options.port, binary: options.binary });
  writeFileSync(pidFile, String(server.pid));
  const stop = server.stop.bind(server);
  return {
    ...server,
    async stop(signal) {
      await stop(signal);
      rmSync(pidFile, { force: true });
    },
  };
}

/** Stops the server named by `pidFile` only if it is a nats-server on this very store. */
async function stopOrphan(pidFile: string, storeDir: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  if (!Number.isInteger(pid) || pid <= 0 || !isNatsServerOn(pid, storeDir)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

function isNatsServerOn(pid: number, storeDir: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.some((a) => a.includes('nats-server')) && args.includes(storeDir);
  } catch {
    return false; // gone, or no /proc to prove it is ours: never signal a process we cannot identify
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
