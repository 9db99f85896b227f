/**
 * Where configuration comes from, and in which order it wins:
 * defaults < file (JSON) < environment (`MILLRACE_*`) < CLI flags < overrides.
 *
 * The layers are merged first and validated once, so every issue is reported
 * together. Each value remembers where it came from, so a message can say
 * "(from MILLRACE_TASK_MAX_IN_FLIGHT)" rather than leave the user guessing.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { ConfigError, ErrorCodes, millraceError } from '../errors.js';
import { NodeConfigSchema, type NodeConfig, type NodeConfigInput } from './schema.js';

/** The sources one node's configuration is read from; later ones win. */
export interface LoadConfigOptions {
  /** Path of a JSON config file. @default none */
  file?: string;
  /**
   * Environment to read `MILLRACE_*` variables from; the CLI passes
   * `process.env`. Nothing here reads the process environment by itself.
   * @default none
   */
  env?: Record<string, string | undefined>;
  /** Flags already parsed by the CLI: `nats`, `dataDir`, `nodeId`, `job`, `logLevel`. @default none */
  flags?: Record<string, unknown>;
  /** Values set in code; they win over every other source. @default none */
  overrides?: NodeConfigInput;
}

type Issue = { path: string; message: string };
type Json = Record<string, unknown>;

/** Every field at its default: shows defaults in messages and lists known fields. */
const DEFAULTS = NodeConfigSchema.parse({});

/** Where a value came from: `layer` names the source, `name` the variable or flag. */
interface Origin {
  layer: string;
  name: string;
}

/** Dotted config path → origin of the value set there. */
type Origins = Map<string, Origin>;

type Parse = (raw: string) => unknown;

const asString: Parse = (raw) => raw;
const asList: Parse = (raw) => splitList(raw);
// A string that is not a number is kept as is, so validation reports it verbatim.
const asNumber: Parse = (raw) => (raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw);

const ENV_VARS: readonly (readonly [variable: string, path: string, parse: Parse])[] = [
  ['MILLRACE_NODE_ID', 'nodeId', asString],
  ['MILLRACE_DATA_DIR', 'dataDir', asString],
  ['MILLRACE_NATS', 'nats.servers', asList],
  ['MILLRACE_NATS_EMBEDDED_BINARY', 'nats.embeddedBinary', asString],
  ['MILLRACE_NATS_EMBEDDED_PORT', 'nats.embeddedPort', asNumber],
  ['MILLRACE_NATS_REPLICAS', 'nats.replicas', asNumber],
  ['MILLRACE_JOBS', 'jobs', asList],
  ['MILLRACE_LOG_LEVEL', 'logLevel', asString],
  ['MILLRACE_TASK_MAX_IN_FLIGHT', 'task.maxInFlight', asNumber],
  ['MILLRACE_TASK_PUBLISH_WINDOW', 'task.publishWindow', asNumber],
  ['MILLRACE_TASK_STATE_CACHE_ENTRIES', 'task.stateCacheEntries', asNumber],
  ['MILLRACE_DEFAULT_PARTITIONS', 'defaultPartitions', asNumber],
  ['MILLRACE_TASK_MAX_UNCOMMITTED_RECORDS', 'task.maxUncommittedRecords', asNumber],
  ['MILLRACE_CHECKPOINT_INTERVAL_MS', 'checkpoint.intervalMs', asNumber],
  ['MILLRACE_CHECKPOINT_TIMEOUT_MS', 'checkpoint.timeoutMs', asNumber],
  ['MILLRACE_CHECKPOINT_FULL_SNAPSHOT_EVERY', 'checkpoint.fullSnapshotEvery', asNumber],
  ['MILLRACE_CHECKPOINT_SINK_MODE', 'checkpoint.sinkMode', asString],
  ['MILLRACE_CHECKPOINT_LEASE_TTL_MS', 'checkpoint.leaseTtlMs', asNumber],
  ['MILLRACE_CLUSTER_HEARTBEAT_MS', 'cluster.heartbeatMs', asNumber],
  ['MILLRACE_CLUSTER_MEMBER_TIMEOUT_MS', 'cluster.memberTimeoutMs', asNumber],
  ['MILLRACE_CLUSTER_CAPACITY', 'cluster.capacity', asNumber],
  ['MILLRACE_CLUSTER_LEAVE_TIMEOUT_MS', 'cluster.leaveTimeoutMs', asNumber],
  ['MILLRACE_CLUSTER_HANDOFF_TIMEOUT_MS', 'cluster.handoffTimeoutMs', asNumber],
];

// `config` is not here: the CLI passes it as `file`.
const FLAGS: readonly (readonly [key: string, path: string, flag: string])[] = [
  ['nodeId', 'nodeId', '--node-id'],
  ['dataDir', 'dataDir', '--data-dir'],
  ['nats', 'nats.servers', '--nats'],
  ['job', 'jobs', '--job'],
  ['logLevel', 'logLevel', '--log-level'],
];

/** Reads, merges and validates every source; returns a deeply frozen config. */
export function loadConfig(options: LoadConfigOptions = {}): NodeConfig {
  const merged: Json = {};
  const origins: Origins = new Map();
  if (options.file !== undefined) {
    merge(merged, readConfigFile(options.file), { layer: options.file, name: options.file }, origins);
  }
  for (const [variable, path, parse] of ENV_VARS) {
    const raw = options.env?.[variable];
    // An empty variable counts as unset, as shells make unsetting awkward.
    if (raw !== undefined && raw !== '') {
      merge(merged, nest(path, parse(raw)), { layer: 'environment', name: variable }, origins);
    }
  }
  for (const [key, path, flag] of FLAGS) {
    const value = options.flags?.[key];
    if (value !== undefined) {
      merge(merged, nest(path, flagValue(key, value)), { layer: 'flags', name: flag }, origins);
    }
  }
  if (options.overrides !== undefined) {
    merge(merged, options.overrides as Json, { layer: 'overrides', name: 'overrides' }, origins);
  }
  return validate(merged, origins);
}

/** Validates one complete or partial config object; `source` names it in the error. */
export function resolveConfig(input: unknown, source?: string): NodeConfig {
  return validate(input, new Map(), source);
}

function validate(input: unknown, origins: Origins, source?: string): NodeConfig {
  const result = NodeConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const issues: Issue[] = [];
  const layers = new Set<string>();
  for (const { path, message } of result.error.issues.flatMap((issue) => describe(issue, input))) {
    // A default has no origin, even inside an object that some source set.
    const origin = valueAt(input, path) === undefined ? undefined : originOf(path.map(String), origins);
    if (origin) layers.add(origin.layer);
    issues.push({ path: path.map(String).join('.'), message: origin ? `${message} (from ${origin.name})` : message });
  }
  throw new ConfigError(issues, source ?? ([...layers].join(', ') || undefined));
}

/** Turns a zod issue into ours: "expected <what the schema says>, got <value>". */
function describe(issue: z.core.$ZodIssue, input: unknown): { path: PropertyKey[]; message: string }[] {
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(valueAt(DEFAULTS, issue.path) as Json);
    return issue.keys.map((key) => ({
      path: [...issue.path, key],
      message: `unknown field; expected one of ${known.join(', ')}`,
    }));
  }
  const given = valueAt(input, issue.path);
  const got = given === undefined ? `${show(valueAt(DEFAULTS, issue.path))} (the default)` : show(given);
  return [{ path: issue.path, message: `expected ${issue.message}, got ${got}` }];
}

function readConfigFile(file: string): Json {
  const fileError = (problem: string, cause: unknown) =>
    millraceError(ErrorCodes.CONFIG_FILE, `config file ${file} ${problem}: ${(cause as Error).message}`, {
      cause,
      details: { file },
    });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw fileError('cannot be read', cause);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw fileError('is not valid JSON', cause);
  }
  if (!isObject(parsed)) throw new ConfigError([{ path: '', message: `expected a JSON object, got ${show(parsed)}` }], file);
  return parsed;
}

/** `--nats` takes a comma-separated string or a list; `--job` one path or a list. */
function flagValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return key === 'nats' ? splitList(value) : key === 'job' ? [value] : value;
}

/** Copies `from` into `into`, objects merged key by key, recording each value's origin. */
function merge(into: Json, from: Json, origin: Origin, origins: Origins, prefix = ''): void {
  for (const [key, value] of Object.entries(from)) {
    if (value === undefined) continue;
    const path = prefix === '' ? key : `${prefix}.${key}`;
    origins.set(path, origin);
    if (isObject(value)) {
      if (!isObject(into[key])) into[key] = {};
      merge(into[key] as Json, value, origin, origins, path);
    } else {
      into[key] = value;
    }
  }
}

/** The origin of the value at `path`, or of the nearest enclosing value that has one. */
function originOf(keys: string[], origins: Origins): Origin | undefined {
  for (let depth = keys.length; depth > 0; depth--) {
    const origin = origins.get(keys.slice(0, depth).join('.'));
    if (origin) return origin;
  }
  return undefined;
}

function nest(path: string, value: unknown): Json {
  return path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Json;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((node, key) => (isObject(node) || Array.isArray(node) ? (node as Json)[key as string] : undefined), root);
}

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function show(value: unknown): string {
  const text = value === undefined ? 'nothing' : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
