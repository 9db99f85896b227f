#!/usr/bin/env node
/**
 * The millrace command line.
 *
 *   millrace node start [--nats <url>] [--data-dir <dir>] [--node-id <id>] [--job <module>]...
 *                       [--config <file.json>] [--log-level <level>]
 *   millrace stream create <name> [--partitions <n>] --nats <url>
 *   millrace stream describe|delete <name> --nats <url>
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.js';
import { connect } from '../cluster/client.js';
import { startNode } from '../cluster/node.js';
import { isMillraceError } from '../errors.js';

const USAGE = `usage:
  millrace node start [--nats <url>] [--data-dir <dir>] [--node-id <id>] [--job <module>]... [--config <file>] [--log-level <level>]
  millrace stream create <name> [--partitions <n>] [--nats <url>]
  millrace stream describe <name> [--nats <url>]
  millrace stream delete <name> [--nats <url>]

Every node option can also come from the config file (--config or MILLRACE_CONFIG)
and from MILLRACE_* environment variables; see docs/reference/configuration.md.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nats: { type: 'string' },
      'data-dir': { type: 'string' },
      'node-id': { type: 'string' },
      job: { type: 'string', multiple: true },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      partitions: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, command, name] = positionals;
  if (values.help || !group) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (group === 'node' && command === 'start') return nodeStart(values);
  if (group === 'stream' && command && name) return stream(command, name, values);
  process.stderr.write(`unknown command: ${positionals.join(' ')}\n${USAGE}\n`);
  return 2;
}

type Flags = Record<string, string | string[] | boolean | undefined>;

async function nodeStart(values: Flags): Promise<number> {
  const config = loadConfig({
    file: (values.config as string | undefined) ?? process.env.MILLRACE_CONFIG,
    env: process.env,
    flags: {
      nats: values.nats,
      dataDir: values['data-dir'],
      nodeId: values['node-id'],
      job: values.job,
      logLevel: values['log-level'],
    },
  });
  const node = await startNode(config);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.logger.info({ signal }, 'stopping');
    node.stop().then(
      () => process.exit(0),
      (err) => {
        node.logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return new Promise<number>(() => undefined); // runs until a signal
}

async function stream(command: string, name: string, values: Flags): Promise<number> {
  const servers = ((values.nats as string | undefined) ?? process.env.MILLRACE_NATS ?? 'nats://127.0.0.1:4222').split(',');
  const client = await connect({ servers });
  try {
    if (command === 'create') {
      const partitions = values.partitions === undefined ? undefined : Number(values.partitions);
      print(await client.streams.create(name, { partitions }));
    } else if (command === 'describe') {
      const d = await client.streams.describe(name);
      if (!d) {
        process.stderr.write(`stream "${name}" does not exist\n`);
        return 1;
      }
      print(d);
    } else if (command === 'delete') {
      print({ deleted: await client.streams.delete(name) });
    } else {
      process.stderr.write(`unknown stream command: ${command}\n${USAGE}\n`);
      return 2;
    }
    return 0;
  } finally {
    await client.close();
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (isMillraceError(err)) process.stderr.write(`millrace: ${err.code}: ${err.message}\n`);
    else process.stderr.write(`millrace: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
