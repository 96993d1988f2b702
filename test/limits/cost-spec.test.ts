import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { directiveTypeDefs, estimateCost } from '../../src/index';
import { readFieldPolicies } from '../../src/directives/field-policies';

// The IBM GraphQL Cost Directives, class by class, each number worked by hand in its comment
// from the spec's rules (README: "The operation budget"). Priced through the public estimateCost,
// exactly as the operation gate prices them.
const SDL = /* GraphQL */ `
  type Query {
    home: Address
    office: Address @cost(weight: 2)
    price: Money
    grade: Grade
    book(id: ID! @cost(weight: 4)): Book
    search(filter: Filter): [Book!] @listSize(assumedSize: 3)
    items(input: ItemsInput!): [Item!] @listSize(slicingArguments: ["input.pagination.first"])
    itemsByIds(ids: [ID!]!): [Item!] @listSize(slicingArguments: ["ids"])
    results(first: Int = 5): SearchResult @listSize(slicingArguments: ["first"], sizedFields: ["page { entries }"])
    recent(first: Int): [Item!] @listSize(slicingArguments: ["first"], requireOneSlicingArgument: false)
    plain: [Item!]
    media(first: Int = 2): [Media!]! @listSize(slicingArguments: ["first"])
  }
  type Mutation {
    addBook(title: String!): Book
    ping: Int @cost(weight: 1)
  }
  type Address @cost(weight: 5) { street: String }
  scalar Money @cost(weight: 3)
  enum Grade @cost(weight: 2) { A B }
  type Book { id: ID! title: String author: Author }
  type Author { name: String }
  type Item { id: ID! }
  input Filter { term: String tags: [String!] @cost(weight: 2) range: Range }
  input Range { from: Int to: Int }
  input ItemsInput { pagination: Pagination }
  input Pagination { first: Int }
  type SearchResult { page: ResultPage }
  type ResultPage { entries: [Item!]! }
  type Video { id: ID! author: Author }
  type Podcast { id: ID! author: Author hosts: [Author!]! @listSize(assumedSize: 3) }
  union Media = Video | Podcast
`;
const schema = makeExecutableSchema({ typeDefs: [directiveTypeDefs, SDL] });
const price = (document: string, variables?: Record<string, unknown>, more: Partial<Parameters<typeof estimateCost>[0]> = {}) => estimateCost({ schema, document, variables, ...more });

describe('cost analysis to the IBM spec, worked by hand', () => {
  it.each<[string, string, Record<string, unknown> | undefined, number]>([
    // 1. @cost on types: Address @cost 5 replaces the object default 1; street 0
    ['an OBJECT weight', '{ home { street } }', undefined, 5],
    // a field's own @cost (2) replaces its type's (5)
    ['a field weight replaces its type weight', '{ office { street } }', undefined, 2],
    // Money @cost 3 (a scalar would cost 0); Grade @cost 2
    ['SCALAR and ENUM weights', '{ price grade }', undefined, 5],
    // 2. input values: book 1 + argument id @cost 4 = 5
    ['an ARGUMENT_DEFINITION weight', '{ book(id: "b1") { id } }', undefined, 5],
    // search: args once (Filter 1 + term 0 + tags @cost 2 + its 2 items 0 + Range 1 + from 0 = 4), then assumedSize 3 × Book 1 = 3 → 7
    ['input objects, input field weights and lists in arguments', '{ search(filter: { term: "x", tags: ["a", "b"], range: { from: 1 } }) { id } }', undefined, 7],
    // the same from a variable: the value counts, not how it was sent
    ['input values through variables', 'query($f: Filter) { search(filter: $f) { id } }', { f: { term: 'x', tags: ['a', 'b'], range: { from: 1 } } }, 7],
    // 3. nested slicing argument: ItemsInput 1 + Pagination 1 + first 7 × Item 1 = 9
    ['a slicing argument inside an input object', '{ items(input: { pagination: { first: 7 } }) { id } }', undefined, 9],
    // 4. a list slicing argument sizes by its length: 3 × Item 1 (the ID list itself costs 0) = 3
    ['a list-typed slicing argument', '{ itemsByIds(ids: ["a", "b", "c"]) { id } }', undefined, 3],
    // 5. sizedFields path "page { entries }": results 1 + page 1 + entries (first 4) × 1 = 6
    ['a nested sizedFields path', '{ results(first: 4) { page { entries { id } } } }', undefined, 6],
    // the schema default of the slicing argument (5) sizes it when none is sent: 1 + 1 + 5 = 7
    ['a nested sizedFields path with the default slicing value', '{ results { page { entries { id } } } }', undefined, 7],
    // 6. @listSize with no slicing value and no assumedSize: the default list size 10, not 1
    ['no slicing value, no assumedSize: the default size', '{ recent { id } }', undefined, 10],
    ['...and a slicing value when given', '{ recent(first: 2) { id } }', undefined, 2],
    // combined: fragments, aliases, @skip/@include with variables, defaults
    // a: home 5; b: itemsByIds 2 × 1 = 2; fragment on Query brings price 3; @skip drops grade
    ['fragments, aliases, variables with defaults and @skip together', 'query($skip: Boolean = true, $ids: [ID!]! = ["x", "y"]) { a: home { street } b: itemsByIds(ids: $ids) { id } ...Q grade @skip(if: $skip) } fragment Q on Query { price }', undefined, 10],
    // @include(if: false) on a costly field removes it entirely, arguments included: home 5 only
    ['@include drops a field with its argument costs', 'query($with: Boolean = false) { home { street } book(id: "b") @include(if: $with) { id } }', undefined, 5],
  ])('%s', (_name, document, variables, expected) => {
    expect(price(document, variables)).toBe(expected);
  });

  it('7. DEFAULT_LIST_SIZE: an unannotated list is sized by the configured default', () => {
    // plain: unannotated list × Item 1
    expect(price('{ plain { id } }')).toBe(10);
    expect(price('{ plain { id } }', undefined, { defaultListSize: 25 })).toBe(25);
  });

  describe('8. rules that differ between implementations', () => {
    // per-field (default): addBook 10 (root mutation default) + ping 1 = 11
    // per-operation (Apollo Router): 10 once + addBook as a Book, 1 + ping 1 = 12
    it('mutations: 10 per root field (default) or 10 once per operation (Apollo Router)', () => {
      const doc = 'mutation { addBook(title: "t") { id } ping }';
      expect(price(doc)).toBe(11);
      expect(price(doc, undefined, { rules: { mutation: 'per-operation' } })).toBe(12);
    });

    // media first 2 × (1 + selection): max → Podcast: author 1 + hosts 3 × 1 = 4 → 2 × 5 = 10
    // sum (Apollo Router, Hive): Video fragment author 1 + Podcast fragment 4 = 5 → 2 × 6 = 12
    it('unions: the most expensive member (default) or every fragment added up (routers)', () => {
      const doc = '{ media { ... on Video { author { name } } ... on Podcast { author { name } hosts { name } } } }';
      expect(price(doc)).toBe(10);
      expect(price(doc, undefined, { rules: { abstractTypes: 'sum' } })).toBe(12);
    });

    // office: field 2 replaces Address 5 (default, Apollo Router) or adds to it (Hive): 7
    it('field weight with type weight: replace (default) or add (Hive)', () => {
      expect(price('{ office { street } }')).toBe(2);
      expect(price('{ office { street } }', undefined, { rules: { typeWeight: 'add' } })).toBe(7);
    });
  });

  it('9. a renamed cost directive (@link import as) is refused at start-up, by name', () => {
    const linked = makeExecutableSchema({
      typeDefs: [
        directiveTypeDefs,
        'scalar link__Import directive @link(url: String!, import: [link__Import]) repeatable on SCHEMA',
        'extend schema @link(url: "https://specs.apollo.dev/cost/v0.1", import: [{ name: "@cost", as: "@myCost" }])',
        'type Query { a: Int }',
      ],
    });
    expect(() => readFieldPolicies(linked)).toThrow(/@link imports @cost as @myCost/);
  });

  it('refuses at start-up a slicing path that leads nowhere, naming the field', () => {
    const bad = makeExecutableSchema({ typeDefs: [directiveTypeDefs, 'input P { n: Int } type Query { a(p: P): [Int] @listSize(slicingArguments: ["p.first"]) }'] });
    expect(() => readFieldPolicies(bad)).toThrow(/@listSize on Query.a: slicing argument "p.first" has no input field "first"/);
  });

  it('estimateCost names a missing operation and refuses bad variables, as the gate would', () => {
    expect(() => price('query A { plain { id } } query B { plain { id } }')).toThrow(/exactly one operation/);
    expect(price('query A { plain { id } } query B { home { street } }', undefined, { operationName: 'B' })).toBe(5);
    expect(() => price('query($ids: [ID!]!) { itemsByIds(ids: $ids) { id } }', {})).toThrow(/\$ids/);
  });
});

describe('the README\'s estimateCost example', () => {
  it('prices the stations query on the bundled schema at 101, as the README says', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { buildSchema } = require('../../src/graphql/schema') as typeof import('../../src/graphql/schema');
    const typeDefs = readFileSync(path.join(__dirname, '..', '..', 'schema', 'weather.graphql'), 'utf8');
    const { schema: weather } = buildSchema({ typeDefs }, { fieldGate: null, admin: null });
    // stations 1 + edges (first 50) × (edge 1 + node 1) = 101
    expect(estimateCost({ schema: weather, document: '{ stations(first: 50) { edges { node { id } } } }', variables: {}, defaultListSize: 10 })).toBe(101);
  });
});
