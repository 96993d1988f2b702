CREATE SCHEMA IF NOT EXISTS "tollgate";
--> statement-breakpoint
-- Databases from before Tollgate had its own schema keep their keys: the tables (with their
-- rows, indexes and sequences) move over instead of being created empty.
DO $$ BEGIN
  IF to_regclass('public.api_keys') IS NOT NULL AND to_regclass('tollgate.api_keys') IS NULL THEN
    ALTER TABLE "public"."api_keys" SET SCHEMA "tollgate";
  END IF;
  IF to_regclass('public.audit_events') IS NOT NULL AND to_regclass('tollgate.audit_events') IS NULL THEN
    ALTER TABLE "public"."audit_events" SET SCHEMA "tollgate";
  END IF;
END $$;
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "tollgate"."api_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"start" text NOT NULL,
	"hash" text NOT NULL,
	"previous_hash" text,
	"previous_hash_expires_at" timestamp with time zone,
	"scopes" text[] DEFAULT '{}'::text[] NOT NULL,
	"limits" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"budget_points" integer,
	"budget_duration" integer,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "tollgate"."audit_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor_key_id" uuid,
	"action" text NOT NULL,
	"target_key_id" uuid,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX IF NOT EXISTS "api_keys_hash_key" ON "tollgate"."api_keys" USING btree ("hash");--> statement-breakpoint
CREATE UNIQUE INDEX IF NOT EXISTS "api_keys_previous_hash_key" ON "tollgate"."api_keys" USING btree ("previous_hash");--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "api_keys_created_at_idx" ON "tollgate"."api_keys" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "audit_events_target_idx" ON "tollgate"."audit_events" USING btree ("target_key_id","id");