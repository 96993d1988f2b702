import type { ApolloServerPlugin } from '@apollo/server';

/**
 * A scope refusal is a field error (status 200) while anything else in the operation succeeds;
 * when it refused the whole operation (every root field null, every error FORBIDDEN), the
 * response says so with HTTP 403.
 */
export function forbiddenStatusPlugin<T extends object>(): ApolloServerPlugin<T> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response }) {
          if (response.body.kind !== 'single') return;
          const { data, errors } = response.body.singleResult;
          if (!errors?.length || !errors.every((e) => e.extensions?.code === 'FORBIDDEN')) return;
          if (data && Object.values(data).some((v) => v !== null)) return;
          response.http.status = 403;
        },
      };
    },
  };
}
