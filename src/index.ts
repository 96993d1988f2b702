// Tollgate's public API: what an API owner imports (`import { createTollgate } from 'tollgate'`).
export { createTollgate, type Tollgate, type TollgateOptions, type Readiness, type RequestInfo, type SchemaSpec, type RateLimitHeaderMode } from './tollgate';
export type { TollgateContext } from './graphql/context';
export { directiveTypeDefs } from './graphql/schema';
export { estimateCost } from './document/estimate-cost';
export { DEFAULT_COST_RULES, type CostRules } from './document/operation-cost';
export { loadConfig, ConfigError, type Config } from './config';
export type { Database, DatabaseHandle } from './db/client';
export type { AuthenticatedKey } from './keys/types';
export { ErrorCode, badUserInput, forbidden } from './errors';
export { httpsRefusal, isHttps } from './http/require-https';
