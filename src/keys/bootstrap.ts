import type { Database } from '../db/client';
import { countKeys } from './repository';
import type { KeyService } from './service';

/**
 * On the very first start (no keys at all) create one admin key and hand its secret back to be
 * printed once. Later starts find a key and do nothing, so the secret is never shown again.
 */
export async function bootstrapAdminKey(db: Database, keys: KeyService, scopes: readonly string[]): Promise<string | null> {
  if ((await countKeys(db)) > 0) return null;
  const created = await keys.create({ name: 'bootstrap admin', scopes: [...scopes] }, null);
  if (!created.ok) throw new Error(created.message);
  return created.value.secret;
}
