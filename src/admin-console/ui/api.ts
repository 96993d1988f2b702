// The console's only door to Tollgate: POST /graphql on its own origin, the admin key in the
// x-api-key header. The key lives in this module's memory and nowhere else (no cookie, no
// storage): closing or reloading the tab signs out.

let key: string | null = null;
const listeners = new Set<(reason: string) => void>();

export const session = {
  get signedIn() {
    return key !== null;
  },
  signIn(secret: string) {
    key = secret;
  },
  signOut(reason = 'Signed out.') {
    const was = key;
    key = null;
    if (was !== null) for (const listener of listeners) listener(reason);
  },
  onSignOut(listener: (reason: string) => void) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly code?: string) {
    super(message);
  }
}

/** One operation; its first error is thrown as an ApiError (with the HTTP status and the code). */
export async function gql<T = any>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  if (key === null) throw new ApiError('Signed out.', 401, 'UNAUTHENTICATED');
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({ query, variables }),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError('Tollgate cannot be reached.', 0);
  }
  const body = await response.json().catch(() => null);
  const error = body?.errors?.[0];
  if (response.status === 401) {
    // Revoked or expired while signed in: back to the sign-in form, saying why.
    session.signOut('The key stopped working (revoked, expired or rotated away): sign in again.');
    throw new ApiError(error?.message ?? 'The key is not valid.', 401, 'UNAUTHENTICATED');
  }
  if (error) throw new ApiError(error.message, response.status, error.extensions?.code);
  if (!response.ok || !body?.data) throw new ApiError(`Tollgate answered HTTP ${response.status}.`, response.status);
  return body.data as T;
}
