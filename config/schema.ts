/**
 * What a node's configuration may contain: the schema, its defaults and the
 * types derived from it. Every field is validated here once (see load.ts)
 * and the result is frozen, so the rest of the node never re-checks it.
 *
 * Each schema carries the text it expects ("an integer >= 1"); load.ts turns
 * that into the full message, adding what it got and where from.
 */
import { hostname } from 'node:os';
import { z } from 'zod';

/** The log levels pino understands, plus `silent`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** This host's name with every character outside `[A-Za-z0-9_-]` replaced by `-`. */
export const DEFAULT_NODE_ID = hostname().replace(/[^A-Za-z0-9_-]/g, '-') || 'millrace';
export const DEFAULT_DATA_DIR = './.millrace';
/** No servers: the node starts an embedded nats-server. */
export const DEFAULT_NATS_SERVERS: readonly string[] = Object.freeze([]);
export const DEFAULT_NATS_EMBEDDED_BINARY = 'nats-server';
/** 0 lets the OS pick a free port. */
export const DEFAULT_NATS_EMBEDDED_PORT = 0;
export const DEFAULT_NATS_NAME = 'millrace';
/** One copy of each JetStream asset: what a single nats-server can hold. */
export const DEFAULT_NATS_REPLICAS = 1;
export const DEFAULT_JOBS: readonly string[] = Object.freeze([]);
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
export const DEFAULT_TASK_MAX_IN_FLIGHT = 20_000;
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 1_000;
export const DEFAULT_CHECKPOINT_TIMEOUT_MS = 60_000;
export const DEFAULT_CHECKPOINT_FULL_SNAPSHOT_EVERY = 10;
export const SINK_MODES = ['transactional', 'immediate'] as const;
export const DEFAULT_CHECKPOINT_SINK_MODE: (typeof SINK_MODES)[number] = 'transactional';
export const DEFAULT_LEASE_TTL_MS = 5_000;
export const DEFAULT_CLUSTER_HEARTBEAT_MS = 1_000;
export const DEFAULT_CLUSTER_MEMBER_TIMEOUT_MS = 5_000;
export const DEFAULT_CLUSTER_LEAVE_TIMEOUT_MS = 30_000;
export const DEFAULT_CLUSTER_HANDOFF_TIMEOUT_MS = 30_000;
export const DEFAULT_TASK_PUBLISH_WINDOW = 8_192;
export const DEFAULT_TASK_STATE_CACHE_ENTRIES = 200_000;
export const DEFAULT_TASK_MAX_UNCOMMITTED_RECORDS = 100_000;
export const DEFAULT_PARTITIONS = 16;

function int(min: number, max?: number) {
  const expected = max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  const atLeast = z.int({ error: expected }).min(min, { error: expected });
  return max === undefined ? atLeast : atLeast.max(max, { error: expected });
}

function text() {
  const expected = 'a non-empty string';
  return z.string({ error: expected }).min(1, { error: expected });
}

// Array defaults go through `prefault`, so they are parsed, copied and frozen like given values.
function list<T extends z.ZodType>(item: T, expected: string) {
  return z.array(item, { error: expected }).readonly();
}

const SERVER = 'a nats:// or tls:// URL, or host:port';
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function isServerAddress(value: string): boolean {
  if (!value.includes('://')) {
    const match = HOST_PORT.exec(value);
    return match !== null && Number(match[2]) <= 65_535;
  }
  try {
    const url = new URL(value);
    return (url.protocol === 'nats:' || url.protocol === 'tls:') && url.hostname !== '' && ['', '/'].includes(url.pathname);
  } catch {
    return false;
  }
}

const NODE_ID = 'a non-empty string of letters, digits, "_" and "-"';

const NatsSchema = z
  .strictObject(
    {
      /**
       * Servers to connect to, each a `nats://` or `tls://` URL or `host:port`.
       * Empty means "start an embedded nats-server".
       * @default {@link DEFAULT_NATS_SERVERS} (`[]`)
       */
      servers: list(z.string({ error: SERVER }).refine(isServerAddress, { error: SERVER }), `a list of ${SERVER}`)
        .prefault(DEFAULT_NATS_SERVERS),
      /**
       * The nats-server executable started when `servers` is empty.
       * @default {@link DEFAULT_NATS_EMBEDDED_BINARY} (`'nats-server'`)
       */
      embeddedBinary: text().default(DEFAULT_NATS_EMBEDDED_BINARY),
      /**
       * Client port of the embedded nats-server; 0 picks a free port.
       * @default {@link DEFAULT_NATS_EMBEDDED_PORT} (`0`)
       */
      embeddedPort: int(0, 65_535).default(DEFAULT_NATS_EMBEDDED_PORT),
      /**
       * Connection name shown by the server's monitoring endpoints.
       * @default {@link DEFAULT_NATS_NAME} (`'millrace'`)
       */
      name: text().default(DEFAULT_NATS_NAME),
      /**
       * Servers that keep a copy of each stream, KV bucket and object store
       * millrace creates (JetStream's replicas): 1 to 5, at most the size of
       * the NATS cluster. Assets that exist keep the count they were created with.
       * @default {@link DEFAULT_NATS_REPLICAS} (`1`)
       */
      replicas: int(1, 5).default(DEFAULT_NATS_REPLICAS),
    },
    { error: 'an object' },
  )
  .superRefine((nats, ctx) => {
    // Checked here rather than left to the first bucket create, which would fail with a server error.
    if (nats.servers.length === 0 && nats.replicas > 1) {
      ctx.addIssue({ code: 'custom', path: ['replicas'], message: '1 when nats.servers is empty (the embedded nats-server is a single server)' });
    }
  })
  .readonly();

const TaskSchema = z
  .strictObject(
    {
      /**
       * Records a task may hold un-acknowledged (the consumer's `max_ack_pending`).
       * @default {@link DEFAULT_TASK_MAX_IN_FLIGHT} (`20000`)
       */
      maxInFlight: int(1).default(DEFAULT_TASK_MAX_IN_FLIGHT),
      /**
       * Outputs a node's publisher may have awaiting a PubAck.
       * @default {@link DEFAULT_TASK_PUBLISH_WINDOW} (`8192`)
       */
      publishWindow: int(1).default(DEFAULT_TASK_PUBLISH_WINDOW),
      /**
       * Decoded state entries each task keeps in memory.
       * @default {@link DEFAULT_TASK_STATE_CACHE_ENTRIES} (`200000`)
       */
      stateCacheEntries: int(0).default(DEFAULT_TASK_STATE_CACHE_ENTRIES),
      /**
       * Records a source task processes past its last committed checkpoint
       * before it waits for the next commit: bounds what one checkpoint holds.
       * @default {@link DEFAULT_TASK_MAX_UNCOMMITTED_RECORDS} (`100000`)
       */
      maxUncommittedRecords: int(1).default(DEFAULT_TASK_MAX_UNCOMMITTED_RECORDS),
    },
    { error: 'an object' },
  )
  .readonly();

const CheckpointSchema = z
  .strictObject(
    {
      /**
       * How often the coordinator starts a checkpoint, in milliseconds.
       * @default {@link DEFAULT_CHECKPOINT_INTERVAL_MS} (`1000`)
       */
      intervalMs: int(1).default(DEFAULT_CHECKPOINT_INTERVAL_MS),
      /**
       * A checkpoint not complete after this long is abandoned.
       * @default {@link DEFAULT_CHECKPOINT_TIMEOUT_MS} (`60000`)
       */
      timeoutMs: int(1).default(DEFAULT_CHECKPOINT_TIMEOUT_MS),
      /**
       * A task's snapshot chain (one full snapshot, then deltas) is compacted
       * to a new full snapshot, taken in the background, once it holds this many.
       * @default {@link DEFAULT_CHECKPOINT_FULL_SNAPSHOT_EVERY} (`10`)
       */
      fullSnapshotEvery: int(1).default(DEFAULT_CHECKPOINT_FULL_SNAPSHOT_EVERY),
      /**
       * `transactional`: sink outputs are published once their checkpoint
       * commits (exactly-once). `immediate`: at once, with idempotent ids
       * (lower latency, at-least-once after JetStream's duplicate window).
       * @default {@link DEFAULT_CHECKPOINT_SINK_MODE} (`'transactional'`)
       */
      sinkMode: z.enum(SINK_MODES, { error: `one of ${SINK_MODES.join(', ')}` }).default(DEFAULT_CHECKPOINT_SINK_MODE),
      /**
       * Time-to-live of the coordinator's leader lease; a dead leader is replaced after it.
       * @default {@link DEFAULT_LEASE_TTL_MS} (`5000`)
       */
      leaseTtlMs: int(100).default(DEFAULT_LEASE_TTL_MS),
    },
    { error: 'an object' },
  )
  .readonly();

const ClusterSchema = z
  .strictObject(
    {
      /**
       * How often a node rewrites its membership entry (its heartbeat).
       * @default {@link DEFAULT_CLUSTER_HEARTBEAT_MS} (`1000`)
       */
      heartbeatMs: int(50).default(DEFAULT_CLUSTER_HEARTBEAT_MS),
      /**
       * A node not heard from for this long is taken for dead: the job restarts
       * from its last committed checkpoint with the node's tasks on the others.
       * It is the membership bucket's TTL, set by the node that creates it.
       * @default {@link DEFAULT_CLUSTER_MEMBER_TIMEOUT_MS} (`5000`)
       */
      memberTimeoutMs: int(100).default(DEFAULT_CLUSTER_MEMBER_TIMEOUT_MS),
      /**
       * The most tasks this node runs, over all its jobs; the coordinator gives
       * the others more. Unset: no limit.
       */
      capacity: int(1).optional(),
      /**
       * On a graceful stop (SIGTERM, `node.stop()`), how long the node waits for
       * its tasks to be handed over to other nodes before it stops anyway (they
       * then restart elsewhere from the last checkpoint).
       * @default {@link DEFAULT_CLUSTER_LEAVE_TIMEOUT_MS} (`30000`)
       */
      leaveTimeoutMs: int(0).default(DEFAULT_CLUSTER_LEAVE_TIMEOUT_MS),
      /**
       * A handoff (tasks moving at a checkpoint after a join or a graceful
       * leave) not done this long after it began becomes a restart of the job
       * from its last checkpoint.
       * @default {@link DEFAULT_CLUSTER_HANDOFF_TIMEOUT_MS} (`30000`)
       */
      handoffTimeoutMs: int(100).default(DEFAULT_CLUSTER_HANDOFF_TIMEOUT_MS),
    },
    { error: 'an object' },
  )
  .readonly();

/** The whole node configuration; unknown keys anywhere are errors. */
export const NodeConfigSchema = z
  .strictObject(
    {
      /**
       * This node's name in the cluster: letters, digits, `_` and `-`.
       * @default {@link DEFAULT_NODE_ID} (the host name, other characters replaced by `-`)
       */
      nodeId: z
        .string({ error: NODE_ID })
        .regex(/^[A-Za-z0-9_-]+$/, { error: NODE_ID })
        .default(DEFAULT_NODE_ID),
      /**
       * Directory where the node keeps its local data (LevelDB state).
       * @default {@link DEFAULT_DATA_DIR} (`'./.millrace'`)
       */
      dataDir: text().default(DEFAULT_DATA_DIR),
      /** How to reach NATS, or how to start it. */
      nats: NatsSchema.prefault({}),
      /**
       * Job modules to load, as paths.
       * @default {@link DEFAULT_JOBS} (`[]`)
       */
      jobs: list(text(), 'a list of module paths').prefault(DEFAULT_JOBS),
      /**
       * Minimum level of log lines written.
       * @default {@link DEFAULT_LOG_LEVEL} (`'info'`)
       */
      logLevel: z.enum(LOG_LEVELS, { error: `one of ${LOG_LEVELS.join(', ')}` }).default(DEFAULT_LOG_LEVEL),
      /** Limits and cadence of each task. */
      task: TaskSchema.prefault({}),
      /** Checkpoints, exactly-once sinks and the coordinator's lease. */
      checkpoint: CheckpointSchema.prefault({}),
      /** Membership: heartbeats and how long a silent node is waited for. */
      cluster: ClusterSchema.prefault({}),
      /**
       * Partitions given to a stream that millrace creates without a count.
       * @default {@link DEFAULT_PARTITIONS} (`16`)
       */
      defaultPartitions: int(1, 4096).default(DEFAULT_PARTITIONS),
    },
    { error: 'an object' },
  )
  .readonly();

/** What a caller may pass: every field optional, unknown keys rejected. */
export type NodeConfigInput = z.input<typeof NodeConfigSchema>;
/** A validated, deeply frozen node configuration. */
export type NodeConfig = z.output<typeof NodeConfigSchema>;
