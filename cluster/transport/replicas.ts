/**
 * How many servers of a NATS cluster keep a copy of each JetStream asset
 * millrace creates: streams, KV buckets and the snapshot object store. One
 * suits a single server; three survive the loss of any one server of three.
 *
 * The count is set when an asset is created. An asset that already exists
 * keeps the count it has (nats.js opens an existing bucket as it is), so
 * raising it later is a stream edit on the server, not a restart.
 */

/** One copy: what a single nats-server can hold. */
export const DEFAULT_REPLICAS = 1;
/** nats-server keeps at most five copies of a stream. */
export const MAX_REPLICAS = 5;

/** The `replicas` option shared by every call that may create a JetStream asset. */
export interface ReplicasOption {
  /**
   * Servers that keep a copy of the asset, if this call creates it: an
   * integer from 1 to {@link MAX_REPLICAS}, at most the cluster's size.
   * @default {@link DEFAULT_REPLICAS} (`1`)
   */
  readonly replicas?: number;
}

/** `replicas`, or the default when it is not given; a TypeError unless it is an integer from 1 to 5. */
export function replicasOf(replicas: number | undefined): number {
  const value = replicas ?? DEFAULT_REPLICAS;
  if (!Number.isInteger(value) || value < 1 || value > MAX_REPLICAS) {
    throw new TypeError(`replicas must be an integer in 1..${MAX_REPLICAS}, got ${value}`);
  }
  return value;
}
