import { defaultFieldResolver, isObjectType, type GraphQLFieldConfig, type GraphQLSchema } from 'graphql';
import { MapperKind, getDirective, mapSchema } from '@graphql-tools/utils';
import { forbidden } from '../errors';
import type { AuthenticatedKey } from '../keys/types';

/**
 * @requireScopes: the calling key must hold every listed scope, else the field is a FORBIDDEN
 * error. Apply this transformer after the rate-limit one: the wrapper applied last runs first,
 * so a refused caller never reaches the limiter and spends nothing.
 */
export function applyRequireScopes(schema: GraphQLSchema): GraphQLSchema {
  const required = readRequiredScopes(schema);
  return mapSchema(schema, {
    [MapperKind.OBJECT_FIELD]: (fieldConfig, fieldName, typeName) => {
      const scopes = required.get(`${typeName}.${fieldName}`);
      return scopes ? guard(fieldConfig, scopes) : fieldConfig;
    },
  });
}

/** Coordinate → scopes its @requireScopes (on the field, else on its type) asks for. */
export function readRequiredScopes(schema: GraphQLSchema): Map<string, string[]> {
  const required = new Map<string, string[]>();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    const typeScopes: string[] | undefined = getDirective(schema, type, 'requireScopes')?.[0]?.scopes;
    for (const field of Object.values(type.getFields())) {
      const scopes: string[] | undefined = getDirective(schema, field, 'requireScopes')?.[0]?.scopes ?? typeScopes;
      if (scopes?.length) required.set(`${type.name}.${field.name}`, scopes);
    }
  }
  return required;
}

function guard(field: GraphQLFieldConfig<unknown, { apiKey?: AuthenticatedKey }>, scopes: string[]) {
  const resolve = field.resolve ?? defaultFieldResolver;
  return {
    ...field,
    resolve(source: unknown, args: Record<string, unknown>, context: { apiKey?: AuthenticatedKey }, info: Parameters<typeof resolve>[3]) {
      const held = context.apiKey?.scopes ?? [];
      const missing = scopes.filter((s) => !held.includes(s));
      if (missing.length) {
        throw forbidden(`This field needs the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.`, { requiredScopes: scopes, coordinate: `${info.parentType.name}.${info.fieldName}` });
      }
      return resolve(source, args, context, info);
    },
  };
}
