import { GraphQLError } from 'graphql';

// One error vocabulary for the whole API. Each error carries its GraphQL code and, where the
// whole request is judged, the HTTP status Apollo should answer with (extensions.http).
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  HTTPS_REQUIRED: 'HTTPS_REQUIRED',
  RATE_LIMITED: 'RATE_LIMITED',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  BAD_REQUEST: 'BAD_REQUEST',
  QUERY_TOO_COMPLEX: 'QUERY_TOO_COMPLEX',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  NOT_FOUND: 'NOT_FOUND',
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  PERSISTED_QUERY_NOT_FOUND: 'PERSISTED_QUERY_NOT_FOUND',
  PERSISTED_QUERY_NOT_SUPPORTED: 'PERSISTED_QUERY_NOT_SUPPORTED',
  OPERATION_RESOLUTION_FAILURE: 'OPERATION_RESOLUTION_FAILURE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The one code → HTTP status table, for errors that refuse the whole request (no data). A field
 * error inside a partial result is always 200. Every code a client can cause is a 4xx; the only
 * 5xx are a coded 503 (a dependency is down) and 500 for a bug.
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  HTTPS_REQUIRED: 403, // not 401: the key was not looked at, and says nothing about it
  RATE_LIMITED: 429,
  BAD_USER_INPUT: 400,
  BAD_REQUEST: 400,
  QUERY_TOO_COMPLEX: 400,
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  PERSISTED_QUERY_NOT_FOUND: 200, // Apollo's APQ protocol: the client retries with the full query
  PERSISTED_QUERY_NOT_SUPPORTED: 400,
  OPERATION_RESOLUTION_FAILURE: 400,
  NOT_FOUND: 404,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL_SERVER_ERROR: 500,
};

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(HTTP_STATUS, code);
}

/** The status for a response whose errors refused it outright: the first coded error decides. */
export function statusForRequestErrors(errors: readonly { extensions?: Record<string, unknown> }[]): number {
  const code = errors.map((e) => e.extensions?.code).find(isErrorCode);
  return code ? HTTP_STATUS[code] : 500;
}

/** The body of every error answered outside GraphQL execution (transport errors, 404, 431). */
export function errorBody(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
  return { errors: [{ message, extensions: { code, ...extensions } }] };
}

type Extra = Record<string, unknown>;

function httpExtensions(status?: number, headers?: Record<string, string>) {
  if (!status) return {};
  // Apollo only honours extensions.http when `headers`, if present, is a Map.
  return { http: headers ? { status, headers: new Map(Object.entries(headers)) } : { status } };
}

/** Codes of refusals that happen before a field does any work: whatever they took goes back, and they cost nothing. */
export const FREE_REFUSALS: ReadonlySet<unknown> = new Set<unknown>([ErrorCode.BAD_USER_INPUT, ErrorCode.FORBIDDEN]);

export class ApiError extends GraphQLError {
  constructor(code: ErrorCode, message: string, extra: Extra = {}, status?: number, headers?: Record<string, string>) {
    super(message, { extensions: { code, ...extra, ...httpExtensions(status, headers) } });
  }
}

export const unauthenticated = (message: string) => new ApiError(ErrorCode.UNAUTHENTICATED, message, {}, 401);
export const forbidden = (message: string, extra: Extra = {}) => new ApiError(ErrorCode.FORBIDDEN, message, extra);
export const badUserInput = (message: string, field?: string) =>
  new ApiError(ErrorCode.BAD_USER_INPUT, message, field ? { field } : {});
/** A key sent over plain HTTP where HTTPS is required (REQUIRE_HTTPS): refused before it is looked at. */
export const httpsRequired = () =>
  new ApiError(ErrorCode.HTTPS_REQUIRED, 'API keys are accepted over HTTPS only: this request came over plain HTTP, so its key was not checked. Send it to the https:// address (and treat this key as exposed).', {}, 403);
export const badRequest = (message: string) => new ApiError(ErrorCode.BAD_REQUEST, message, {}, 400);
/** A dependency (the limiter store, the database) is down: 503 with Retry-After, never a bare 500. */
export const serviceUnavailable = (message: string, retryAfterSeconds = 1) =>
  new ApiError(ErrorCode.SERVICE_UNAVAILABLE, message, { retryAfter: retryAfterSeconds }, 503, { 'retry-after': String(retryAfterSeconds) });

export const tooComplex = (message: string, extra: Extra) => new ApiError(ErrorCode.QUERY_TOO_COMPLEX, message, extra, 400);
/** A query over MAX_QUERY_CHARS: refused before parsing by the server, after it by the plugin. */
export const queryTooLong = (length: number, maxChars: number) => tooComplex(`The query has ${length} characters; the most allowed is ${maxChars}.`, { maxChars });

/**
 * RATE_LIMITED, the one way it is built. A whole request refused (IP gate, operation budget)
 * answers 429 with Retry-After; a field refused inside a result is a field error at its path.
 */
export function rateLimited(message: string, extra: Extra & { retryAfter: number }, scope: 'request' | 'field' = 'request') {
  return scope === 'request'
    ? new ApiError(ErrorCode.RATE_LIMITED, message, extra, 429, { 'retry-after': String(extra.retryAfter) })
    : new ApiError(ErrorCode.RATE_LIMITED, message, extra);
}

/** Makes an error refuse the whole request with this status (e.g. bad input found before execution: 400). */
export function withHttpStatus<T extends GraphQLError>(error: T, status: number): T {
  (error.extensions as Record<string, unknown>).http = { status };
  return error;
}

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

type ResponseHead = { http: { status?: number; headers: Map<string, string> }; body: { kind: string; singleResult?: unknown } };

/** Replaces a finished GraphQL response with one error: its status, its headers, its body. */
export function replaceWithError(response: ResponseHead, error: GraphQLError) {
  const { http, ...extensions } = error.extensions as { http?: { status?: number; headers?: Map<string, string> }; code?: unknown };
  response.http.status = http?.status ?? (isErrorCode(extensions.code) ? HTTP_STATUS[extensions.code] : 500);
  for (const [name, value] of http?.headers ?? []) response.http.headers.set(name, value);
  response.body = { kind: 'single', singleResult: { errors: [{ message: error.message, extensions }] } };
}

/** Driver error codes that mean "the database or store did not answer", not "the request is wrong". */
const DEPENDENCY_FAILURE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', '57014', '57P01', '57P03']);

/** Whether an exception is a dependency outage (through wrappers: Drizzle puts the driver's in `cause`). */
export function isDependencyFailure(error: unknown): boolean {
  // Duck-typed, not instanceof: driver errors may come from another realm (jest's VM, workers).
  let current = error as { name?: unknown; code?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; current && typeof current === 'object' && depth < 4; depth++, current = current.cause as typeof current) {
    if (current.name === 'TimeoutError') return true;
    const code = current.code;
    if (typeof code === 'string' && DEPENDENCY_FAILURE_CODES.has(code)) return true;
  }
  return false;
}
