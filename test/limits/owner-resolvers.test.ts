import { ApolloServer } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { createTollgate, type Tollgate } from '../../src/index';
import { testConfig } from '../support/harness';

// An owner's resolvers behind a limited root field, as Tollgate runs them (decided with the
// operation, then the owner's resolver called directly): whatever they return, a refused input
// gives its points back and answers 400, never a 500.
describe('an owner\'s limited root field resolvers', () => {
  let tollgate: Tollgate;
  let server: ApolloServer<any>;
  let secret: string;
  /** A thenable that is not a Promise (no catch method): some data libraries return these. */
  const rejecting = (error: Error) => ({ then: (_: unknown, onRejected?: (e: Error) => unknown) => Promise.resolve(onRejected ? onRejected(error) : undefined) });

  beforeAll(async () => {
    tollgate = await createTollgate({ config: testConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent' }), printAdminKey: false });
    const schema = tollgate.schema({
      typeDefs: 'type Query { lookup(id: Int!): Int @rateLimit(limit: 2, duration: 60) }',
      resolvers: { Query: { lookup: (_: unknown, { id }: { id: number }) => (id < 0 ? rejecting(new GraphQLError('id must not be negative', { extensions: { code: 'BAD_USER_INPUT' } })) : id) } },
    });
    server = new ApolloServer({ schema, plugins: tollgate.plugins });
    await server.start();
    const created = await tollgate.services.keys.create({ name: 'owner', scopes: ['read'] }, null);
    if (!created.ok) throw new Error(created.message);
    secret = created.value.secret;
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    await tollgate?.close();
  });

  const ask = async (id: number) => {
    const contextValue = await tollgate.contextFor({ requestId: `r${id}`, ip: '127.0.0.1', headers: { 'x-api-key': secret } });
    const res = await server.executeOperation({ query: `{ lookup(id: ${id}) }` }, { contextValue });
    return res.body.kind === 'single' ? res.body.singleResult : null;
  };

  it('a rejecting thenable is the client\'s error and costs nothing: the limit of 2 still admits two', async () => {
    const refused = await ask(-1);
    expect(refused?.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    expect((await ask(1))?.data).toEqual({ lookup: 1 });
    expect((await ask(2))?.data).toEqual({ lookup: 2 });
    expect((await ask(3))?.errors?.map((e) => e.extensions?.code)).toEqual(['RATE_LIMITED']);
  });
});
