import { HTTP_STATUS, statusForRequestErrors } from '../errors';

type Response = {
  http: { status?: number; headers: Map<string, string> };
  body: { kind: string; singleResult?: { data?: Record<string, unknown> | null; errors?: readonly { extensions?: Record<string, unknown> }[] } };
};

/**
 * Where GraphQL errors become an HTTP status, from the one table in errors.ts, whatever raised
 * them (our gates, graphql-js, Apollo, graphql-armor):
 *  - a request refused outright (no data) answers the status of its error's code, so a client's
 *    mistake can never surface as a 500 because some error forgot its `extensions.http`;
 *  - a scope refusal or an outage is a field error (200) while anything else in the operation
 *    succeeds; when it refused the whole operation (every root field null, every error FORBIDDEN,
 *    or every error SERVICE_UNAVAILABLE), 403 or 503.
 */
export function setResponseStatus(response: Response): void {
  const single = response.body.kind === 'single' ? response.body.singleResult : undefined;
  if (!single?.errors?.length) return;
  const { data, errors } = single;
  if (data === undefined) {
    const status = response.http.status;
    // A status a gate chose on purpose (429 with Retry-After, 401) stands; a default does not.
    if (status === undefined || status === 200 || status === 500) response.http.status = statusForRequestErrors(errors);
    return;
  }
  // Every root field refused for one reason: the whole operation was refused.
  const code = errors[0].extensions?.code;
  if (code !== 'FORBIDDEN' && code !== 'SERVICE_UNAVAILABLE') return;
  if (!errors.every((e) => e.extensions?.code === code)) return;
  if (data && Object.values(data).some((v) => v !== null)) return;
  response.http.status = HTTP_STATUS[code];
  if (code === 'SERVICE_UNAVAILABLE') response.http.headers.set('retry-after', String(errors[0].extensions?.retryAfter ?? 5));
}
