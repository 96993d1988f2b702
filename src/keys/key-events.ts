/**
 * Redis pub/sub channel on which a key change (revoke, rotate, update) is announced with the key
 * id, so every instance drops that key from its cache within a second.
 */
export const KEY_CHANGED_CHANNEL = 'tollgate:key-changed';
