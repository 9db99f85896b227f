/** The machine a benchmark ran on, as printed under every result table. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  natsServer: string;
  natsJs: string;
  msgpackr: string;
  /** 1-minute load average when the bench started and when it ended: above the core count, other work shared the CPUs. */
  load: { start: number; end: number };
}

export function describeMachine(loadAtStart: number, natsServerBinary = 'nats-server'): MachineInfo {
  const server = spawnSync(natsServerBinary, ['--version'], { encoding: 'utf8' });
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    natsServer: server.stdout?.trim().replace(/^nats-server:\s*/, '') || 'unknown',
    natsJs: packageVersion('nats'),
    msgpackr: packageVersion('msgpackr'),
    load: { start: loadAtStart, end: os.loadavg()[0]! },
  };
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve(name);
    const root = main.slice(0, main.lastIndexOf(`node_modules/${name}/`) + `node_modules/${name}/`.length);
    return (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
