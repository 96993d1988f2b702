import type { Database } from './db/client';
import type { AuthenticatedKey } from './keys/types';
import type { KeyService } from './keys/service';
import type { WeatherLoaders } from './weather/resolvers';
import type { FieldUsageReader } from './limits/usage';
import type { IpVerdict } from './limits/ip-gate';
import type { FieldCharge } from './limits/rate-limit-directive';
import type { FieldNode, GraphQLError } from 'graphql';

/** Per-request facts for the access log, set by the context function and plugins. */
export type RequestMeta = {
  keyId?: string;
  operationName?: string | null;
  operationType?: string;
  /** Requested cost of the operation, in points. */
  cost?: number;
  /** Gates that refused something in this request (`operation`, `field:Query.forecast`, …). */
  gates?: string[];
  /** How long the operation gate's budget call took. */
  budgetStoreMs?: number;
};

/** What every resolver receives. Mutable per-request state lives in nested objects (see NOTES #10). */
export type Context = {
  requestId: string;
  apiKey: AuthenticatedKey;
  db: Database;
  keys: KeyService;
  usage: FieldUsageReader;
  loaders: WeatherLoaders;
  /** Filled by the operation gate; read by the response headers and `rateLimit`. */
  meta: RequestMeta;
  /** Limited root fields whose budgets the operation gate took with its own (see precharge). */
  prepaid: Map<FieldNode, Promise<FieldCharge>>;
  /** The IP gate's verdict for this request (taken once, on first call). */
  ipCheck: () => Promise<IpVerdict>;
  /** The error that refuses a request for its address. */
  ipRefusal: (verdict: Exclude<IpVerdict, { ok: true }>) => GraphQLError;
  cost: {
    requested?: number;
    /** Points taken from the budget before execution (0 or unset: nothing charged). */
    charged?: number;
    actual?: number;
    remaining?: number;
    limit?: number;
    resetAt?: Date;
    window?: number;
    dryRun?: boolean;
  };
};
