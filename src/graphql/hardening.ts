import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { GraphQLError, Lexer, Source, TokenKind, validate, type DocumentNode, type GraphQLSchema, type ValidationContext, type ValidationRule } from 'graphql';
import { ErrorCode, queryTooLong, withHttpStatus } from '../errors';

export type HardeningLimits = { maxDepth: number; maxAliases: number; maxDirectives: number; maxTokens: number; maxChars: number };

/**
 * Query hardening, checked before cost analysis and before any resolver: characters, tokens
 * (graphql-js's lexer), depth, aliases and directives (graphql-armor's validation rules).
 *
 * Two places, one set of limits: `hardeningRules` and a token limit go into Apollo's own
 * options (`tollgate.apolloOptions`), so a hostile document is refused while it is parsed and
 * validated — before graphql-js's own, costlier validation rules run over it. `createHardening`
 * runs the same checks from the Tollgate plugin, so they hold in any Apollo server the plugin
 * is put on even without those options; its verdict is remembered per parsed document (Apollo
 * reuses the document of a repeated query), so a busy API pays for it once per query shape.
 */
export function hardeningRules(limits: HardeningLimits): ValidationRule[] {
  // Report into the validation context (a 400 like any validation error); armor's default is to
  // throw, which Apollo turns into a 500.
  const report = { propagateOnRejection: false, onReject: [(context: ValidationContext | null, error: GraphQLError) => (refusals.add(error), context?.reportError(error))] };
  return [
    maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, ...report }),
    maxAliasesRule({ n: limits.maxAliases, ...report }),
    maxDirectivesRule({ n: limits.maxDirectives, ...report }),
  ];
}

/** The errors the hardening rules reported (Apollo wraps them; their originalError is one of these). */
const refusals = new WeakSet<object>();

/**
 * Whether an error is a hardening refusal, for the access log's `gates`: one of the rules', the
 * parser's token limit (graphql-js's own message, "more that N tokens", typo included), or ours.
 */
export function isHardeningRefusal(error: { message: string; originalError?: unknown; extensions?: Record<string, unknown> }): boolean {
  if (refusals.has(error) || (typeof error.originalError === 'object' && error.originalError !== null && refusals.has(error.originalError))) return true;
  return /^Syntax Error: Document contains more tha[nt] \d+ tokens/.test(error.message) || (error.extensions?.code === ErrorCode.QUERY_TOO_COMPLEX && 'maxChars' in error.extensions);
}

export function createHardening(limits: HardeningLimits) {
  const rules = hardeningRules(limits);
  const verdicts = new WeakMap<DocumentNode, GraphQLError | null>();

  const judge = (schema: GraphQLSchema, document: DocumentNode, source: string | undefined): GraphQLError | null => {
    if (source !== undefined && source.length > limits.maxChars) {
      return queryTooLong(source.length, limits.maxChars);
    }
    if (source !== undefined && countTokens(source, limits.maxTokens) > limits.maxTokens) {
      return withHttpStatus(new GraphQLError(`Syntax Error: Document contains more than ${limits.maxTokens} tokens.`, { extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED } }), 400);
    }
    const [first] = validate(schema, document, rules);
    return first ? marked(withHttpStatus(new GraphQLError(first.message, { nodes: first.nodes, extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED } }), 400)) : null;
  };

  /** Throws the first limit the document breaks (400, coded). */
  return function check(schema: GraphQLSchema, document: DocumentNode, source: string | undefined): void {
    let verdict = verdicts.get(document);
    if (verdict === undefined) verdicts.set(document, (verdict = judge(schema, document, source)));
    if (verdict) throw verdict;
  };
}

function marked(error: GraphQLError): GraphQLError {
  refusals.add(error);
  return error;
}

/** Tokens in `source`, counting no further than max + 1. */
function countTokens(source: string, max: number): number {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) if (++count > max) break;
  } catch {
    // a lexing error is the parser's to report, and it already has
  }
  return count;
}
