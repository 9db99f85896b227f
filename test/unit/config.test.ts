import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  DEFAULT_DATA_DIR,
  DEFAULT_NODE_ID,
  DEFAULT_PARTITIONS,
  DEFAULT_CHECKPOINT_TIMEOUT_MS,
  DEFAULT_TASK_MAX_IN_FLIGHT,
  loadConfig,
  resolveConfig,
} from '../../config/index.js';
import { ErrorCodes, type ConfigError, type MillraceError } from '../../errors.js';

const dir = mkdtempSync(join(tmpdir(), 'millrace-config-'));
let files = 0;

/** Writes `content` (an object as JSON, or raw text) to a fresh file and returns its path. */
function configFile(content: unknown): string {
  const file = join(dir, `config-${files++}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

function configError(t: ExecutionContext, load: () => unknown): ConfigError {
  return t.throws<ConfigError>(load, { code: ErrorCodes.CONFIG_INVALID })!;
}

function paths(err: ConfigError): string[] {
  return err.issues.map((issue) => issue.path);
}

test('with no sources every field has its default', (t) => {
  const config = loadConfig();
  t.deepEqual(config, {
    nodeId: DEFAULT_NODE_ID,
    dataDir: './.millrace',
    nats: { servers: [], embeddedBinary: 'nats-server', embeddedPort: 0, name: 'millrace', replicas: 1 },
    jobs: [],
    logLevel: 'info',
    task: {
      maxInFlight: 20_000,
      publishWindow: 8_192,
      stateCacheEntries: 200_000,
      maxUncommittedRecords: 100_000,
    },
    checkpoint: {
      intervalMs: 1_000,
      timeoutMs: 60_000,
      fullSnapshotEvery: 10,
      sinkMode: 'transactional',
      leaseTtlMs: 5_000,
    },
    cluster: { heartbeatMs: 1_000, memberTimeoutMs: 5_000, leaveTimeoutMs: 30_000, handoffTimeoutMs: 30_000 },
    defaultPartitions: 16,
  });
  t.regex(config.nodeId, /^[A-Za-z0-9_-]+$/);
});

test('file < env < flags < overrides: each source beats the ones before it', (t) => {
  const file = configFile({ dataDir: 'from-file' });
  const env = { MILLRACE_DATA_DIR: 'from-env' };
  const flags = { dataDir: 'from-flags' };
  const overrides = { dataDir: 'from-overrides' };
  t.is(loadConfig({ file }).dataDir, 'from-file');
  t.is(loadConfig({ file, env }).dataDir, 'from-env');
  t.is(loadConfig({ file, env, flags }).dataDir, 'from-flags');
  t.is(loadConfig({ file, env, flags, overrides }).dataDir, 'from-overrides');
});

test('sources merge field by field, keeping what later sources leave unset', (t) => {
  const config = loadConfig({
    file: configFile({ task: { maxInFlight: 50_000 }, logLevel: 'warn' }),
    env: { MILLRACE_TASK_PUBLISH_WINDOW: '64' },
    overrides: { checkpoint: { intervalMs: 10 } },
  });
  t.like(config, { logLevel: 'warn', task: { maxInFlight: 50_000, publishWindow: 64 }, checkpoint: { intervalMs: 10 } });
  t.is(config.checkpoint.timeoutMs, DEFAULT_CHECKPOINT_TIMEOUT_MS);
  t.is(config.dataDir, DEFAULT_DATA_DIR);
});

test('env and flag lists split on commas; a single --job becomes a list', (t) => {
  const fromEnv = loadConfig({ env: { MILLRACE_NATS: 'nats://a:4222, tls://b:4222', MILLRACE_JOBS: 'a.js,b.js' } });
  t.deepEqual(fromEnv.nats.servers, ['nats://a:4222', 'tls://b:4222']);
  t.deepEqual(fromEnv.jobs, ['a.js', 'b.js']);
  const fromFlags = loadConfig({ flags: { nats: 'a:4222,b:4222', job: 'only.js', config: 'ignored.json' } });
  t.deepEqual(fromFlags.nats.servers, ['a:4222', 'b:4222']);
  t.deepEqual(fromFlags.jobs, ['only.js']);
});

test('an unknown key in the file is rejected with its path, and the error names the file', (t) => {
  const file = configFile({ task: { maxInFligth: 10 } });
  const err = configError(t, () => loadConfig({ file }));
  t.deepEqual(paths(err), ['task.maxInFligth']);
  t.is(err.details.source, file);
});

test('a non-number in a numeric env var names the field path and the variable', (t) => {
  const err = configError(t, () => loadConfig({ env: { MILLRACE_TASK_MAX_IN_FLIGHT: 'abc' } }));
  t.deepEqual(paths(err), ['task.maxInFlight']);
  t.regex(err.issues[0]!.message, /MILLRACE_TASK_MAX_IN_FLIGHT/);
});

test('checkpoint.sinkMode accepts only transactional or immediate, from the env too', (t) => {
  t.is(loadConfig({ env: { MILLRACE_CHECKPOINT_SINK_MODE: 'immediate' } }).checkpoint.sinkMode, 'immediate');
  const err = configError(t, () => resolveConfig({ checkpoint: { sinkMode: 'eventually' as never } }));
  t.deepEqual(paths(err), ['checkpoint.sinkMode']);
});

test('nats.servers accepts nats://, tls:// and host:port, and rejects anything else by index', (t) => {
  const servers = ['nats://user:pw@a:4222', 'tls://b', 'c:4222', '[::1]:4222'];
  t.deepEqual(resolveConfig({ nats: { servers } }).nats.servers, servers);
  const err = configError(t, () => resolveConfig({ nats: { servers: ['http://a:4222', 'b:4222', 'c'] } }));
  t.deepEqual(paths(err), ['nats.servers.0', 'nats.servers.2']);
});

test('nats.replicas comes from MILLRACE_NATS_REPLICAS; anything but an integer from 1 to 5 stops with its path', (t) => {
  const servers = 'nats://a:4222,nats://b:4222,nats://c:4222';
  t.is(loadConfig({ env: { MILLRACE_NATS: servers, MILLRACE_NATS_REPLICAS: '3' } }).nats.replicas, 3);
  t.is(loadConfig({ env: { MILLRACE_NATS: servers } }).nats.replicas, 1);
  for (const bad of ['0', '6', '2.5', '-1', 'three']) {
    const err = configError(t, () => loadConfig({ env: { MILLRACE_NATS: servers, MILLRACE_NATS_REPLICAS: bad } }));
    t.deepEqual(paths(err), ['nats.replicas'], bad);
    t.regex(err.issues[0]!.message, /MILLRACE_NATS_REPLICAS/);
  }
  t.deepEqual(paths(configError(t, () => resolveConfig({ nats: { servers: ['a:4222'], replicas: '3' as never } }))), ['nats.replicas']);
});

test('nats.replicas above 1 needs nats.servers: the embedded nats-server is a single server', (t) => {
  t.is(resolveConfig({ nats: { replicas: 1 } }).nats.replicas, 1);
  const err = configError(t, () => loadConfig({ env: { MILLRACE_NATS_REPLICAS: '3' } }));
  t.deepEqual(paths(err), ['nats.replicas']);
  t.regex(err.issues[0]!.message, /nats\.servers is empty.*MILLRACE_NATS_REPLICAS/);
});

test('the result is frozen all the way down', (t) => {
  const servers = ['a:4222'];
  const config = loadConfig({ overrides: { nats: { servers } } });
  const unfrozen: string[] = [];
  const visit = (value: unknown, path: string): void => {
    if (typeof value !== 'object' || value === null) return;
    if (!Object.isFrozen(value)) unfrozen.push(path || '(root)');
    for (const [key, child] of Object.entries(value)) visit(child, path ? `${path}.${key}` : key);
  };
  visit(config, '');
  t.deepEqual(unfrozen, []);
  t.throws(() => {
    (config.task as { maxInFlight: number }).maxInFlight = 1;
  }, { instanceOf: TypeError });
  t.false(Object.isFrozen(servers), "the caller's own array is copied, not frozen");
});

test('a missing file is an MR_CONFIG_FILE error', (t) => {
  const err = t.throws<MillraceError>(() => loadConfig({ file: join(dir, 'missing.json') }), { code: ErrorCodes.CONFIG_FILE });
  t.is(err?.details.file, join(dir, 'missing.json'));
});

test('a file that is not JSON is an MR_CONFIG_FILE error', (t) => {
  const file = configFile('{ "dataDir": ');
  const err = t.throws<MillraceError>(() => loadConfig({ file }), { code: ErrorCodes.CONFIG_FILE });
  t.is(err?.details.file, file);
});

test('every invalid field is reported at once, from every source', (t) => {
  const err = configError(t, () =>
    loadConfig({
      file: configFile({ logLevel: 'loud', defaultPartitions: 0, extra: true }),
      env: { MILLRACE_NATS_EMBEDDED_PORT: '70000' },
      flags: { nodeId: 'has space' },
      overrides: { task: { stateCacheEntries: -1 } },
    }),
  );
  t.deepEqual(paths(err).sort(), [
    'defaultPartitions',
    'extra',
    'logLevel',
    'nats.embeddedPort',
    'nodeId',
    'task.stateCacheEntries',
  ]);
});

test('resolveConfig validates one object and names its source', (t) => {
  t.is(resolveConfig({ defaultPartitions: 4 }).defaultPartitions, 4);
  t.is(resolveConfig({}).defaultPartitions, DEFAULT_PARTITIONS);
  t.is(resolveConfig({}).task.maxInFlight, DEFAULT_TASK_MAX_IN_FLIGHT);
  const err = configError(t, () => resolveConfig({ jobs: 'a.js' }, 'job.json'));
  t.deepEqual(paths(err), ['jobs']);
  t.is(err.details.source, 'job.json');
  t.deepEqual(paths(configError(t, () => resolveConfig(null))), ['']);
});
