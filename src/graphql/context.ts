import type { AuthenticatedKey } from '../keys/types';
import type { Admission } from '../gates/pipeline';

/**
 * What every resolver receives from Tollgate's context function: the request id, the calling
 * key, and the request's admission (its passage through the gates). An owner's own per-request
 * values (data loaders, a database handle) are merged in beside these.
 */
export type TollgateContext = {
  requestId: string;
  apiKey: AuthenticatedKey;
  admission: Admission;
};
