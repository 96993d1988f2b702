import { GraphQLError } from 'graphql';

// One error vocabulary for the whole API. Each error carries its GraphQL code and, where the
// whole request is judged, the HTTP status Apollo should answer with (extensions.http).
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  RATE_LIMITED: 'RATE_LIMITED',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  BAD_REQUEST: 'BAD_REQUEST',
  QUERY_TOO_COMPLEX: 'QUERY_TOO_COMPLEX',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  NOT_FOUND: 'NOT_FOUND',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

type Extra = Record<string, unknown>;

function httpExtensions(status?: number, headers?: Record<string, string>) {
  if (!status) return {};
  // Apollo only honours extensions.http when `headers`, if present, is a Map.
  return { http: headers ? { status, headers: new Map(Object.entries(headers)) } : { status } };
}

export class ApiError extends GraphQLError {
  constructor(code: ErrorCode, message: string, extra: Extra = {}, status?: number, headers?: Record<string, string>) {
    super(message, { extensions: { code, ...extra, ...httpExtensions(status, headers) } });
  }
}

export const unauthenticated = (message: string) => new ApiError(ErrorCode.UNAUTHENTICATED, message, {}, 401);
export const forbidden = (message: string, extra: Extra = {}) => new ApiError(ErrorCode.FORBIDDEN, message, extra);
export const badUserInput = (message: string, field?: string) =>
  new ApiError(ErrorCode.BAD_USER_INPUT, message, field ? { field } : {});
export const badRequest = (message: string) => new ApiError(ErrorCode.BAD_REQUEST, message, {}, 400);
export const serviceUnavailable = (message: string) => new ApiError(ErrorCode.SERVICE_UNAVAILABLE, message, {}, 503);

/** What every RATE_LIMITED error tells the client (DESIGN.md error table). */
export type LimitState = { limit: number; remaining: number; msBeforeNext: number; duration?: number };

export function limitExtensions(state: LimitState, now = Date.now()) {
  const retryAfter = Math.max(1, Math.ceil(state.msBeforeNext / 1000));
  return {
    limit: state.limit,
    ...(state.duration !== undefined ? { duration: state.duration } : {}),
    remaining: state.remaining,
    retryAfter,
    resetAt: new Date(now + state.msBeforeNext).toISOString(),
  };
}
