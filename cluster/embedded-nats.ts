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
  await stopOrphan(pidFile);
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

async function stopOrphan(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  if (!Number.isInteger(pid) || pid <= 0 || !isNatsServer(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

function isNatsServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nats-server');
  } catch {
    return alive(pid) && process.platform !== 'linux';
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
