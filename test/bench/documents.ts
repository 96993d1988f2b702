// The document figures of `npm run bench` ("documents" lines): how long reading an operation's
// document takes (the field collection and the cost walk, src/document/) and graphql-js's own
// validation, for the worst fan-outs the default hardening limits let through and for documents
// built to exhaust MAX_QUERY_STEPS. In process, best of 20 (validation best of 3; once each in the smoke run); no server.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { GraphQLError, Lexer, Source, TokenKind, getOperationAST, parse, specifiedRules, validate } from 'graphql';
import { readFieldPolicies } from '../../src/directives/field-policies';
import { DocumentTooComplex, FieldCollection } from '../../src/document/collect-fields';
import { fragmentsOf } from '../../src/document/operation-analysis';
import { requestedCost } from '../../src/document/operation-cost';
import { directiveTypeDefs } from '../../src/graphql/schema';
import { fanOutDocument, type FanOut } from '../support/hostile-documents';

const MAX_TOKENS = 2000;
const MAX_STEPS = 20_000;

export function documentFigures(root: string, repetitions = 20): string[] {
  const sdl = ['weather', 'rate-limit'].map((f) => readFileSync(path.join(root, 'schema', `${f}.graphql`), 'utf8'));
  const schema = makeExecutableSchema({ typeDefs: [directiveTypeDefs, readFileSync(path.join(root, 'schema', 'common.graphql'), 'utf8'), sdl[0], sdl[1].replace('type Query', 'extend type Query')] });
  const policies = readFieldPolicies(schema);
  const tokens = (query: string) => {
    const lexer = new Lexer(new Source(query));
    let n = 0;
    while (lexer.advance().kind !== TokenKind.EOF) n++;
    return n;
  };
  const read = (shape: FanOut) => {
    const { query, variables } = fanOutDocument(shape);
    const document = parse(query);
    const operation = getOperationAST(document)!;
    let best = Infinity;
    let steps = 0;
    let stopped = false;
    for (let i = 0; i < repetitions; i++) {
      const collection = new FieldCollection(schema, fragmentsOf(document), variables, MAX_STEPS);
      const started = performance.now();
      try {
        requestedCost({ schema, operation, fragments: fragmentsOf(document), variables, policies, collection });
      } catch (error) {
        if (!(error instanceof DocumentTooComplex) && !(error instanceof GraphQLError)) throw error;
        stopped = true;
      }
      best = Math.min(best, performance.now() - started);
      steps = collection.spentSteps;
    }
    let validateMs = Infinity;
    for (let i = 0; i < Math.min(3, repetitions); i++) {
      const validateStarted = performance.now();
      validate(schema, document, specifiedRules);
      validateMs = Math.min(validateMs, performance.now() - validateStarted);
    }
    return { ms: best, steps, stopped, validateMs, tokens: tokens(query) };
  };
  const lines: string[] = [];
  let worstRead = { ms: 0, steps: 0 };
  let worstValidate = { ms: 0, shape: '' };
  for (const on of ['Query', 'Station'] as const) {
    for (const depth of [2, 3, 5, 8]) {
      for (const flags of [false, true]) {
        // the widest fan-out within the token limit
        const shape = (breadth: number): FanOut => ({ breadth, depth, on, inline: flags, aliases: false, directives: flags });
        // binary search: the token count grows with the breadth
        let [low, high] = [2, 2000];
        while (low < high) {
          const mid = Math.ceil((low + high) / 2);
          if (tokens(fanOutDocument(shape(mid)).query) <= MAX_TOKENS) low = mid;
          else high = mid - 1;
        }
        const breadth = low;
        const r = read(shape(breadth));
        if (r.ms > worstRead.ms) worstRead = { ms: r.ms, steps: r.steps };
        if (r.validateMs > worstValidate.ms) worstValidate = { ms: r.validateMs, shape: `${breadth} spreads × ${depth} levels on ${on}${flags ? ' with inline fragments and @include' : ''}` };
      }
    }
  }
  lines.push(`documents: the widest fan-outs within ${MAX_TOKENS} tokens (16 shapes): read in at most ${worstRead.ms.toFixed(2)} ms (${worstRead.steps} steps); graphql-js validation at most ${worstValidate.ms.toFixed(1)} ms (${worstValidate.shape})`);
  for (const shape of [{ breadth: 4000, depth: 5, on: 'Query' }, { breadth: 2000, depth: 5, on: 'Station' }] as const) {
    const r = read({ ...shape, inline: true, aliases: false, directives: true });
    lines.push(`documents: ${shape.breadth} spreads × ${shape.depth} levels on ${shape.on} (${r.tokens} tokens, past the hardening limits): ${r.stopped ? `stopped at ${MAX_STEPS} steps` : `${r.steps} steps`} after ${r.ms.toFixed(2)} ms`);
  }
  return lines;
}
