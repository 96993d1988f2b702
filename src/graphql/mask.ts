import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { ErrorCode } from '../errors';
import { isUnexpected } from './plugin';

/**
 * Apollo's formatError for servers that want it (the bundled one does): anything that is not one
 * of our coded errors (or graphql-js's and Apollo's own) becomes a generic INTERNAL_SERVER_ERROR
 * — the Tollgate plugin then adds the request id, and the log has the real error under it.
 */
export function maskUnexpected(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  if (formatted.extensions && 'stacktrace' in formatted.extensions) {
    const { stacktrace: _stack, ...extensions } = formatted.extensions;
    formatted = { ...formatted, extensions };
  }
  if (isUnexpected(error)) {
    return { message: 'Internal error.', locations: formatted.locations, path: formatted.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
  }
  // graphql-js's and Apollo's own request errors sometimes carry no code: they are the client's.
  if (formatted.extensions?.code === ErrorCode.INTERNAL_SERVER_ERROR && error instanceof GraphQLError) return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_REQUEST } };
  return formatted;
}
