// One server of the library workload, in its own process: the same one-field schema with no I/O
// on the same Apollo standalone server, protected different ways (BENCH_VARIANT):
//   bare-apollo     no protection at all
//   bare-apollo-turn  the same, its context answered one event-loop turn later, as Tollgate's
//                   gates answer (take.ts): what that alone does to Apollo's throughput, so the
//                   gates' own cost can be read apart from it
//   naive-memory    the "do it yourself" peer: keys in a Map, graphql-rate-limit-directive on
//   naive-redis     RateLimiterMemory / RateLimiterRedis, one limiter call per request
//   tollgate        Tollgate as a library, exactly the README's contract (memory, or Redis with REDIS_URL)
// Prints one JSON line ({ url, key }) when it is listening.
import http from 'node:http';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { GraphQLError } from 'graphql';
import { rateLimitDirective } from 'graphql-rate-limit-directive';
import Redis from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type IRateLimiterStoreOptions } from 'rate-limiter-flexible';
import { createTollgate, loadConfig } from '../../src/index';

const HUGE = 1_000_000_000;
const typeDefs = `type Query { hello: String @rateLimit(limit: ${HUGE}, duration: 60) }`;
const resolvers = { Query: { hello: () => 'world' } };

async function main() {
  const variant = process.env.BENCH_VARIANT ?? 'bare-apollo';
  let schema;
  let context: (args: { req: import('node:http').IncomingMessage }) => Promise<object>;
  let plugins: import('@apollo/server').ApolloServerPlugin<any>[] = [];
  let key = 'bench-key';
  let close = async () => {};
  // Redis commands this server sent, counted at its client (a script call is one command).
  let commands = () => 0;

  if (variant === 'tollgate') {
    const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: 'silent', IP_LIMIT: String(HUGE), BUDGET_POINTS: String(HUGE), BUDGET_BURST_POINTS: '0', DATA_DIR: 'memory://' });
    const tollgate = await createTollgate({ config, printAdminKey: false });
    commands = () => tollgate.services.store.commands();
    schema = tollgate.schema({ typeDefs, resolvers });
    plugins = tollgate.plugins;
    context = tollgate.context;
    const created = await tollgate.services.keys.create({ name: 'bench', scopes: ['read'] }, null);
    if (!created.ok) throw new Error(created.message);
    key = created.value.secret;
    close = () => tollgate.close();
  } else if (variant.startsWith('naive')) {
    // What a team writes in an afternoon: a key table in memory, the directive on a limiter.
    const keys = new Map([[key, { id: 'k1' }]]);
    const redis = variant === 'naive-redis' ? new Redis(process.env.REDIS_URL!, { enableOfflineQueue: false }) : undefined;
    if (redis) {
      await new Promise((r) => redis.once('ready', r));
      let sent = 0;
      const send = redis.sendCommand.bind(redis) as (...args: unknown[]) => unknown;
      (redis as { sendCommand: unknown }).sendCommand = (...args: unknown[]) => (sent++, send(...args));
      commands = () => sent;
    }
    const { rateLimitDirectiveTypeDefs, rateLimitDirectiveTransformer } = rateLimitDirective<{ keyId: string }, IRateLimiterStoreOptions>({
      keyGenerator: (_args, _source, _fieldArgs, ctx, info) => `${ctx.keyId}:${info.parentType.name}.${info.fieldName}`,
      limiterClass: redis ? RateLimiterRedis : RateLimiterMemory,
      limiterOptions: (redis ? { storeClient: redis } : {}) as IRateLimiterStoreOptions,
    });
    schema = rateLimitDirectiveTransformer(makeExecutableSchema({ typeDefs: [rateLimitDirectiveTypeDefs, typeDefs], resolvers }));
    context = async ({ req }) => {
      const found = keys.get(String(req.headers['x-api-key']));
      if (!found) throw new GraphQLError('bad key', { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
      return { keyId: found.id };
    };
    close = async () => void redis?.disconnect();
  } else {
    schema = makeExecutableSchema({ typeDefs: 'type Query { hello: String }', resolvers });
    context = variant === 'bare-apollo-turn' ? () => new Promise((resolve) => setImmediate(resolve, {})) : async () => ({});
  }

  const server = new ApolloServer({ schema, plugins, introspection: false });
  const { url } = await startStandaloneServer(server, { context: context as never, listen: { port: 0, host: '127.0.0.1' } });
  const stats = http.createServer((_req, res) => res.end(JSON.stringify({ commands: commands() })));
  await new Promise<void>((r) => stats.listen(0, '127.0.0.1', r));
  const statsUrl = `http://127.0.0.1:${(stats.address() as import('node:net').AddressInfo).port}`;
  process.stdout.write(JSON.stringify({ url: url.replace(/\/$/, ''), key, statsUrl }) + '\n');
  const stop = () => void server.stop().then(close).then(() => (stats.close(), process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`library bench server failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
