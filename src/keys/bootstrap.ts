import type { KeyService } from './service';

/**
 * On the very first start (no keys at all) create one admin key and hand its secret back to be
 * printed once. Later starts find a key and do nothing, so the secret is never shown again.
 */
export async function bootstrapAdminKey(keys: KeyService, scopes: readonly string[]): Promise<string | null> {
  return (await keys.createFirstAdmin(scopes))?.secret ?? null;
}
