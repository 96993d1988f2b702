import { buildASTSchema, parse, type GraphQLDirective } from 'graphql';
import { rateLimitDirective } from 'graphql-rate-limit-directive';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { schemaFolder } from '../../src/graphql/schema';

// schema/directives.graphql declares @rateLimit by hand (made repeatable); this keeps it the
// library's own definition in every other respect.
const shape = (d: GraphQLDirective) => ({
  locations: [...d.locations].sort(),
  args: d.args.map((a) => ({ name: a.name, type: String(a.type), default: a.defaultValue })),
});

describe('schema/directives.graphql', () => {
  const ours = buildASTSchema(parse(readFileSync(path.join(schemaFolder, 'directives.graphql'), 'utf8') + '\ntype Query { ok: Int }'));
  const library = buildASTSchema(parse(rateLimitDirective().rateLimitDirectiveTypeDefs + '\ntype Query { ok: Int }'));

  it('declares @rateLimit as graphql-rate-limit-directive does, plus repeatable', () => {
    const mine = ours.getDirective('rateLimit')!;
    const theirs = library.getDirective('rateLimit')!;
    expect(shape(mine)).toEqual(shape(theirs));
    expect(mine.isRepeatable).toBe(true);
  });

  it('declares the IBM cost directives with the names and arguments Apollo Router uses', () => {
    expect(shape(ours.getDirective('cost')!).args).toEqual([{ name: 'weight', type: 'Int!', default: undefined }]);
    expect(shape(ours.getDirective('listSize')!).args.map((a) => a.name)).toEqual(['assumedSize', 'slicingArguments', 'sizedFields', 'requireOneSlicingArgument']);
  });
});
