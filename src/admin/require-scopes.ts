import { defaultFieldResolver, type GraphQLFieldConfig, type GraphQLSchema } from 'graphql';
import { MapperKind, getDirective, mapSchema } from '@graphql-tools/utils';
import { forbidden } from '../errors';
import type { AuthenticatedKey } from '../keys/types';

/**
 * @requireScopes: the calling key must hold every listed scope, else the field is a FORBIDDEN
 * error. Apply this transformer after the rate-limit one: the wrapper applied last runs first,
 * so a refused caller never reaches the limiter and spends nothing.
 */
export function applyRequireScopes(schema: GraphQLSchema): GraphQLSchema {
  return mapSchema(schema, {
    [MapperKind.OBJECT_FIELD]: (fieldConfig, _fieldName, typeName) => {
      const type = schema.getType(typeName)!;
      const scopes: string[] | undefined =
        getDirective(schema, fieldConfig, 'requireScopes')?.[0]?.scopes ?? getDirective(schema, type as never, 'requireScopes')?.[0]?.scopes;
      return scopes?.length ? guard(fieldConfig, scopes) : fieldConfig;
    },
  });
}

function guard(field: GraphQLFieldConfig<unknown, { apiKey?: AuthenticatedKey }>, scopes: string[]) {
  const resolve = field.resolve ?? defaultFieldResolver;
  return {
    ...field,
    resolve(source: unknown, args: Record<string, unknown>, context: { apiKey?: AuthenticatedKey }, info: Parameters<typeof resolve>[3]) {
      const held = context.apiKey?.scopes ?? [];
      const missing = scopes.filter((s) => !held.includes(s));
      if (missing.length) {
        throw forbidden(`This field needs the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.`, { requiredScopes: scopes });
      }
      return resolve(source, args, context, info);
    },
  };
}
