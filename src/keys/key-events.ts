/**
 * Redis pub/sub channel on which a change is announced with the id it touched — a key (revoke,
 * rotate, update), or a consumer or plan (every key under it) — so every instance drops the keys
 * it names from its cache within a second.
 */
export const KEY_CHANGED_CHANNEL = 'tollgate:key-changed';
