CREATE TABLE "tollgate"."usage" (
	"granularity" text NOT NULL,
	"start" timestamp with time zone NOT NULL,
	"key_id" uuid NOT NULL,
	"consumer_id" uuid DEFAULT '00000000-0000-0000-0000-000000000000' NOT NULL,
	"operations" bigint DEFAULT 0 NOT NULL,
	"refused" bigint DEFAULT 0 NOT NULL,
	"points" bigint DEFAULT 0 NOT NULL,
	"refunded" bigint DEFAULT 0 NOT NULL,
	"errors" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_key_id_granularity_start_consumer_id_pk" PRIMARY KEY("key_id","granularity","start","consumer_id")
);
--> statement-breakpoint
CREATE TABLE "tollgate"."usage_fields" (
	"granularity" text NOT NULL,
	"start" timestamp with time zone NOT NULL,
	"key_id" uuid NOT NULL,
	"consumer_id" uuid DEFAULT '00000000-0000-0000-0000-000000000000' NOT NULL,
	"coordinate" text NOT NULL,
	"calls" bigint DEFAULT 0 NOT NULL,
	"points" bigint DEFAULT 0 NOT NULL,
	"refused" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_fields_key_id_granularity_start_consumer_id_coordinate_pk" PRIMARY KEY("key_id","granularity","start","consumer_id","coordinate")
);
--> statement-breakpoint
CREATE TABLE "tollgate"."usage_flushes" (
	"id" text PRIMARY KEY NOT NULL,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tollgate"."usage_refusals" (
	"granularity" text NOT NULL,
	"start" timestamp with time zone NOT NULL,
	"key_id" uuid NOT NULL,
	"consumer_id" uuid DEFAULT '00000000-0000-0000-0000-000000000000' NOT NULL,
	"gate" text NOT NULL,
	"coordinate" text DEFAULT '' NOT NULL,
	"count" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_refusals_key_id_granularity_start_consumer_id_gate_coordinate_pk" PRIMARY KEY("key_id","granularity","start","consumer_id","gate","coordinate")
);
--> statement-breakpoint
CREATE TABLE "tollgate"."webhook_events" (
	"id" text PRIMARY KEY NOT NULL,
	"dedupe_key" text NOT NULL,
	"type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"last_attempt_at" timestamp (3) with time zone,
	"last_result" text,
	"delivered_at" timestamp (3) with time zone,
	"keep_until" timestamp (3) with time zone
);
--> statement-breakpoint
ALTER TABLE "tollgate"."api_keys" ADD COLUMN "secret_created_at" timestamp (3) with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
UPDATE "tollgate"."api_keys" SET "secret_created_at" = "created_at";--> statement-breakpoint
CREATE INDEX "usage_consumer_idx" ON "tollgate"."usage" USING btree ("consumer_id","granularity","start");--> statement-breakpoint
CREATE INDEX "usage_bucket_idx" ON "tollgate"."usage" USING btree ("granularity","start");--> statement-breakpoint
CREATE INDEX "usage_fields_consumer_idx" ON "tollgate"."usage_fields" USING btree ("consumer_id","granularity","start");--> statement-breakpoint
CREATE INDEX "usage_fields_bucket_idx" ON "tollgate"."usage_fields" USING btree ("granularity","start");--> statement-breakpoint
CREATE INDEX "usage_refusals_consumer_idx" ON "tollgate"."usage_refusals" USING btree ("consumer_id","granularity","start");--> statement-breakpoint
CREATE INDEX "usage_refusals_bucket_idx" ON "tollgate"."usage_refusals" USING btree ("granularity","start");--> statement-breakpoint
CREATE UNIQUE INDEX "webhook_events_dedupe_key" ON "tollgate"."webhook_events" USING btree ("dedupe_key");--> statement-breakpoint
CREATE INDEX "webhook_events_due_idx" ON "tollgate"."webhook_events" USING btree ("status","next_attempt_at");--> statement-breakpoint
CREATE INDEX "webhook_events_created_idx" ON "tollgate"."webhook_events" USING btree ("created_at","id");