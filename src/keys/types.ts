import type { LimitOverride } from '../db/schema';

/** What the gates need to know about the calling key; lives in ctx.apiKey and in the key cache. */
export type AuthenticatedKey = Readonly<{
  id: string;
  name: string;
  scopes: readonly string[];
  expiresAt: Date | null;
  /** Per-coordinate replacements for schema limits (coordinate → windows). */
  limits: ReadonlyMap<string, readonly { limit: number; duration: number }[]>;
  budget: { points: number; duration: number } | null;
}>;

export type { LimitOverride };
