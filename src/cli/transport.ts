import { execute, parse, type ExecutionResult } from 'graphql';
import { loadConfig, redisTarget } from '../config';
import { openDatabase } from '../db/client';
import { tollgateMigrations } from '../db/migrate';
import { KeyService } from '../keys/service';
import { ConsumerService } from '../consumers/service';
import { KEY_CHANGED_CHANNEL } from '../keys/key-events';
import { createRedisClient } from '../counting/store';
import { UsageHistory } from '../usage/history';
import { Outbox } from '../alerts/outbox';
import { adminResolvers } from '../admin/resolvers';
import { buildSchema } from '../graphql/schema';
import type { FieldUsageReader } from '../gates/usage';
import { badUserInput } from '../errors';

/**
 * The admin API, wherever it is: the CLI sends the same GraphQL documents to a running server
 * (`--url`) or runs them in this process over the database (the admin schema and resolvers the
 * server serves, with the command line as the actor). So both ways do exactly what the admin API
 * does, validation and audit included, and answer in the same shape.
 */
export type AdminApi = {
  /** The operation's data; a refusal throws an AdminError with the API's message. */
  request<T = any>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** True when the admin API runs here, over the database; false through a server. */
  readonly local: boolean;
  close(): Promise<void>;
};

export class AdminError extends Error {}

type GraphQLErrorLike = { message: string; extensions?: { code?: unknown } };

/** One line: the API's message, and its code where it adds something (not for plain input mistakes). */
function describe(errors: readonly GraphQLErrorLike[]): string {
  return errors
    .map((e) => {
      const code = typeof e.extensions?.code === 'string' ? e.extensions.code : undefined;
      return code && code !== 'BAD_USER_INPUT' && code !== 'NOT_FOUND' ? `${e.message} (${code})` : e.message;
    })
    .join('; ');
}

/**
 * Field limits a key, consumer or plan may set are the coordinates the server's schema limits; the
 * CLI on its own does not have that schema (an owner's lives in their app), so locally any
 * well-formed `Type.field` is taken and the command says it was not checked.
 */
class AnyCoordinate extends Set<string> {
  override has(coordinate: string) {
    return /^[A-Za-z_]\w*\.[A-Za-z_]\w*$/.test(coordinate);
  }
}

export async function localAdmin(env: NodeJS.ProcessEnv): Promise<AdminApi> {
  const config = loadConfig(env);
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, timeoutMs: config.databaseTimeoutMs, purpose: 'keys CLI' });
  const target = redisTarget(config);
  const redis = target ? createRedisClient(target, 'cli', config.limiterTimeoutMs) : undefined;
  redis?.on('error', () => undefined);
  try {
    await database.migrate(tollgateMigrations);
  } catch (error) {
    redis?.disconnect();
    await database.close();
    throw error;
  }
  // Running servers drop the key (or a consumer's or plan's keys) from their caches within a second.
  const announce = async (id: string) => void (await redis?.publish(KEY_CHANGED_CHANNEL, id).catch(() => undefined));
  const limitedCoordinates = new AnyCoordinate();
  const resolvers = adminResolvers({
    keys: new KeyService({ db: database.db, prefix: config.keyPrefix, scopes: config.scopes, limitedCoordinates, onKeyChanged: announce }),
    consumers: new ConsumerService({ db: database.db, limitedCoordinates, maxQueryCost: config.maxQueryCost, onChanged: announce }),
    // A key's live field budgets are in the limiter store of the servers: the CLI never asks for them here.
    usage: { forKey: async () => [] } as unknown as FieldUsageReader,
    history: new UsageHistory(database.db),
    hourRetentionMs: config.usage.retentionMs.hour,
    outbox: new Outbox(database.db),
    rotationDays: config.keyRotationDays,
    // Where a consumer's windows stand is in the servers' limiter store too: asked through one.
    standing: async () => {
      throw badUserInput('a consumer\'s windows live in the running servers\' limiter store: ask a server with --url');
    },
  });
  const { schema } = buildSchema({ typeDefs: [] }, { fieldGate: null, admin: resolvers });
  // The audit names no admin key for the command line (actorKeyId null).
  const contextValue = { apiKey: { id: null } };
  return {
    local: true,
    async request(query, variables) {
      const result = (await execute({ schema, document: parse(query), variableValues: variables, contextValue })) as ExecutionResult;
      if (result.errors?.length) throw new AdminError(describe(result.errors));
      // As a server would send it (dates as ISO strings): the same shapes both ways.
      return JSON.parse(JSON.stringify(result.data));
    },
    async close() {
      redis?.disconnect();
      await database.close();
    },
  };
}

export function remoteAdmin(url: string, key: string): AdminApi {
  let endpoint: string;
  try {
    const base = new URL(url);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error();
    // A bare address means the bundled server's /graphql; a path is taken as the endpoint itself.
    endpoint = (base.pathname === '/' ? new URL('/graphql', base) : base).toString();
  } catch {
    throw new AdminError(`--url "${url}" is not an http(s) URL (e.g. http://127.0.0.1:4000)`);
  }
  return {
    local: false,
    async request(query, variables) {
      let response: Response;
      try {
        response = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(15_000) });
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code;
        if ((error as Error).name === 'TimeoutError') throw new AdminError(`${endpoint} did not answer within 15 s`);
        throw new AdminError(cause === 'ECONNREFUSED' ? `no server answers at ${url}` : `could not reach ${endpoint}: ${cause ?? (error as Error).message}`);
      }
      const body = (await response.json().catch(() => null)) as { data?: unknown; errors?: GraphQLErrorLike[] } | null;
      if (body?.errors?.length) throw new AdminError(describe(body.errors));
      if (!response.ok || !body?.data) throw new AdminError(`${endpoint} answered HTTP ${response.status}`);
      return body.data as any;
    },
    close: async () => {},
  };
}
