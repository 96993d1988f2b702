import { makeExecutableSchema } from '@graphql-tools/schema';
import { getOperationAST, parse } from 'graphql';
import { readFieldPolicies } from '../../src/directives/field-policies';
import { analyseOperation, priceCacheBytes } from '../../src/document/operation-analysis';
import { directiveTypeDefs } from '../../src/graphql/schema';

// Prices are kept per operation and variables, bounded in bytes whatever clients send: a large
// variable varied per request is never kept, and many small ones never hold more than 1 MB.
const schema = makeExecutableSchema({
  typeDefs: [directiveTypeDefs, 'type Query { search(term: String!, first: Int = 5): [Item!]! @listSize(slicingArguments: ["first"]) } type Item { id: ID! }'],
});
const policies = readFieldPolicies(schema);
const document = parse('query($term: String!, $first: Int) { search(term: $term, first: $first) { id } }');
const operation = getOperationAST(document)!;
const price = (variables: Record<string, unknown>) => analyseOperation({ schema, document, operation, variables, policies, stepBudget: 1000 }).cost;

describe('the price cache', () => {
  it('keeps nothing of a 1 MB variable varied per request, and still prices each request', () => {
    const before = priceCacheBytes();
    for (let i = 0; i < 50; i++) expect(price({ term: `${i}`.padEnd(1 << 20, 'x'), first: 3 })).toBe(3);
    expect(priceCacheBytes()).toBe(before);
  });

  it('holds at most 1 MB however many distinct small variables arrive', () => {
    for (let i = 0; i < 40_000; i++) price({ term: `term number ${i} with some padding to make it longer than a short key`, first: 1 + (i % 7) });
    expect(priceCacheBytes()).toBeGreaterThan(0);
    expect(priceCacheBytes()).toBeLessThanOrEqual(1 << 20);
  });

  it('a cached price is the same price', () => {
    expect(price({ term: 'a', first: 4 })).toBe(4);
    expect(price({ term: 'a', first: 4 })).toBe(4);
    expect(price({ term: 'a', first: 6 })).toBe(6);
  });
});
