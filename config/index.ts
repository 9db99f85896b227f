/** The config layer: what other layers may use to load and read a node's configuration. */
export { loadConfig, resolveConfig } from './load.js';
export {
  DEFAULT_DATA_DIR,
  DEFAULT_JOBS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_NATS_EMBEDDED_BINARY,
  DEFAULT_NATS_EMBEDDED_PORT,
  DEFAULT_NATS_NAME,
  DEFAULT_NATS_SERVERS,
  DEFAULT_NODE_ID,
  DEFAULT_PARTITIONS,
  DEFAULT_CHECKPOINT_FULL_SNAPSHOT_EVERY,
  DEFAULT_CHECKPOINT_INTERVAL_MS,
  DEFAULT_CHECKPOINT_SINK_MODE,
  DEFAULT_CHECKPOINT_TIMEOUT_MS,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_TASK_MAX_IN_FLIGHT,
  DEFAULT_TASK_PUBLISH_WINDOW,
  DEFAULT_TASK_STATE_CACHE_ENTRIES,
} from './schema.js';
export type { LoadConfigOptions } from './load.js';
export type { LogLevel, NodeConfig, NodeConfigInput } from './schema.js';
