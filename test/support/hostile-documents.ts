import fc from 'fast-check';

// Worst-case documents for the weather schema: fragments that spread other fragments many times
// over (breadth) through many levels (depth), on the root type and on Station under a list,
// inline fragments, aliases, @skip/@include with variables. Every document is valid GraphQL for
// the example schema and within the default hardening limits, so it reaches every gate; a gate
// that re-reads a fragment at each spread does breadth^depth work on it.

export type FanOut = {
  breadth: number;
  depth: number;
  /** Where the fragments apply: the root type, or Station (spread inside lists). */
  on: 'Query' | 'Station';
  inline: boolean;
  aliases: boolean;
  directives: boolean;
};

export function fanOutDocument(shape: FanOut): { query: string; variables: Record<string, unknown> } {
  const { breadth, depth, on } = shape;
  const spreads = (level: number) => {
    const spread = (i: number) => {
      const text = `...F${level}${shape.directives && i % 7 === 0 ? ' @include(if: $yes)' : ''}`;
      return shape.inline && i % 5 === 0 ? `... on ${on} { ${text} }` : text;
    };
    return Array.from({ length: breadth }, (_, i) => spread(i)).join(' ');
  };
  const leaf = on === 'Query' ? (shape.aliases ? 'a: __typename b: __typename' : '__typename') : shape.aliases ? 'n: name c: country' : 'name';
  const fragments: string[] = [];
  for (let level = 1; level < depth; level++) fragments.push(`fragment F${level} on ${on} { ${leaf} ${spreads(level + 1)} }`);
  fragments.push(`fragment F${depth} on ${on} { ${leaf} }`);
  const body = on === 'Query'
    ? spreads(1)
    : `station(id: "LHR") { ${spreads(1)} } stations(first: 3) { edges { node { ${spreads(1)} } } }`;
  const header = shape.directives ? 'query Q($yes: Boolean = true)' : 'query Q';
  return { query: `${header} { ${body} } ${fragments.join(' ')}`, variables: shape.directives ? { yes: true } : {} };
}

export const fanOutShapes: fc.Arbitrary<FanOut> = fc.record({
  breadth: fc.integer({ min: 2, max: 80 }),
  depth: fc.integer({ min: 2, max: 6 }),
  on: fc.constantFrom<'Query' | 'Station'>('Query', 'Station'),
  inline: fc.boolean(),
  aliases: fc.boolean(),
  directives: fc.boolean(),
});
