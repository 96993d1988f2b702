import { Kind, parse, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { readFieldPolicies } from '../../src/directives/field-policies';
import { actualCost, requestedCost } from '../../src/document/operation-cost';
import { directiveTypeDefs } from '../../src/graphql/schema';

const SDL = /* GraphQL */ `
  type Query {
    book(id: ID!): Book
    books(first: Int = 5): [Book!]! @listSize(slicingArguments: ["first"])
    shelf(first: Int = 10, after: String): BookConnection @listSize(slicingArguments: ["first"], sizedFields: ["edges"])
    search(term: String!): [SearchResult!]! @listSize(assumedSize: 20)
    tags: [String!]!
    expensive: Int @cost(weight: 7)
    authors: [Author!]!
  }
  type Mutation {
    addBook(title: String!): Book
    cheapPing: Int @cost(weight: 1)
  }
  type Book { id: ID! title: String! author: Author reviews(last: Int = 3): [Review!]! @listSize(slicingArguments: ["last"]) }
  type Author { name: String! }
  type Review { stars: Int! }
  type Magazine { issue: Int! publisher: Author editors(first: Int = 4): [Author!]! @listSize(slicingArguments: ["first"]) }
  union SearchResult = Book | Magazine
  type BookConnection { edges: [BookEdge!]! totalCount: Int! }
  type BookEdge { cursor: String! node: Book! }
`;

const schema = makeExecutableSchema({ typeDefs: [directiveTypeDefs, SDL] });
const policies = readFieldPolicies(schema);

function input(query: string, variables: Record<string, unknown> = {}) {
  const document = parse(query);
  const operation = document.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)!;
  const fragments = Object.fromEntries(
    document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
  );
  return { schema, operation, fragments, variables, policies };
}

const cost = (query: string, variables?: Record<string, unknown>) => requestedCost(input(query, variables));

describe('operation cost (IBM cost directives), worked by hand', () => {
  it.each<[string, string, Record<string, unknown>, number]>([
    // scalars cost 0, __typename is free
    ['scalars only', '{ tags __typename }', {}, 0],
    // book (object) 1 + title 0
    ['one object', '{ book(id: 1) { title } }', {}, 1],
    // book 1 + author 1
    ['nesting', '{ book(id: 1) { title author { name } } }', {}, 2],
    // books: first 5 × (1 + author 1) = 10
    ['list with default slicing argument', '{ books { author { name } } }', {}, 10],
    // first from a variable: 8 × 1 = 8
    ['list sized by a variable', 'query($n: Int) { books(first: $n) { id } }', { n: 8 }, 8],
    // books 2 × (1 + reviews 3 × 1) = 8
    ['nested lists multiply', '{ books(first: 2) { reviews { stars } } }', {}, 8],
    // shelf 1 + edges (sized by first: 4) × (edge 1 + node 1) = 9
    ['connection: first sizes edges', '{ shelf(first: 4) { totalCount edges { cursor node { title } } } }', {}, 9],
    // a: 1 + b: 1 + c: books 3 × 1 = 5
    ['aliases count separately', '{ a: book(id: 1) { id } b: book(id: 2) { id } c: books(first: 3) { id } }', {}, 5],
    // fragment expanded: book 1 + author 1 = 2, twice via two spreads on aliases = 4
    ['named fragments', 'query { x: book(id: 1) { ...B } y: book(id: 2) { ...B } } fragment B on Book { author { name } }', {}, 4],
    // search: assumedSize 20 × max(Book: 1 + author 1 = 2, Magazine: 1 + publisher 1 + editors 4 × 1 = 6) = 120
    ['union takes its most expensive member', '{ search(term: "x") { ... on Book { author { name } } ... on Magazine { publisher { name } editors { name } } } }', {}, 120],
    // @skip(if: true) drops author: book 1
    ['@skip honoured', 'query($s: Boolean!) { book(id: 1) { author @skip(if: $s) { name } } }', { s: true }, 1],
    // @include(if: false) drops the whole field
    ['@include honoured', '{ book(id: 1) @include(if: false) { id } expensive }', {}, 7],
    // unannotated list: default size 10 × 1 = 10
    ['unannotated list uses the default size', '{ authors { name } }', {}, 10],
    // mutation field default 10 + returned book 0 selections → 10; cheapPing @cost 1
    ['mutations default to 10', 'mutation { addBook(title: "t") { id } cheapPing }', {}, 11],
    // inline fragment without type condition is expanded in place: 1 + 1
    ['inline fragment on the same type', '{ book(id: 1) { ... { author { name } } } }', {}, 2],
  ])('%s', (_name, query, variables, expected) => {
    expect(cost(query, variables)).toBe(expected);
  });

  it('measures what was really returned', () => {
    const query = '{ books(first: 5) { author { name } reviews { stars } } }';
    // requested: 5 × (1 + 1 + 3 × 1) = 25
    expect(cost(query)).toBe(25);
    // returned: 2 books; first with an author and 1 review, second without author and 0 reviews
    // book1: 1 + author 1 + reviews [1 × 1] = 3; book2: 1 + author(null) 1 + reviews [] 0 = 2
    const data = { books: [{ author: { name: 'a' }, reviews: [{ stars: 5 }] }, { author: null, reviews: [] }] };
    expect(actualCost(input(query), data)).toBe(5);
  });

  it('skips fields it is told to (the free rateLimit field)', () => {
    expect(requestedCost({ ...input('{ expensive book(id: 1) { id } }'), skipRootFields: new Set(['expensive']) })).toBe(1);
  });
});
