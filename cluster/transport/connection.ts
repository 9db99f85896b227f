/** Opens the NATS connection a node or client uses, tuned for the data path. */
import { connect, type NatsConnection } from 'nats';
import { ErrorCodes } from '../../errors.js';
import { translateNatsError } from './nats-errors.js';

export interface ConnectOptions {
  /** NATS URLs. */
  servers: readonly string[];
  /** Connection name shown by the server. @default 'millrace' */
  name?: string;
}

export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  try {
    return await connect({
      servers: [...options.servers],
      name: options.name ?? 'millrace',
      // nats.js captures a stack trace per request when async traces are on:
      // half the CPU of a publish (design/NATS-BASELINE.md).
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
    });
  } catch (err) {
    throw translateNatsError(err, `cannot connect to NATS at ${options.servers.join(', ')}`, ErrorCodes.NATS_CONNECT);
  }
}
