CREATE TABLE "tollgate"."consumers" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"external_id" text,
	"plan_id" uuid,
	"budgets" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"quotas" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"limits" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tollgate"."plans" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"budgets" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"quotas" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"limits" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"max_operation_cost" integer,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tollgate"."api_keys" ADD COLUMN "budgets" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "tollgate"."api_keys" ADD COLUMN "consumer_id" uuid;--> statement-breakpoint
ALTER TABLE "tollgate"."audit_events" ADD COLUMN "target_id" uuid;--> statement-breakpoint
ALTER TABLE "tollgate"."consumers" ADD CONSTRAINT "consumers_plan_id_plans_id_fk" FOREIGN KEY ("plan_id") REFERENCES "tollgate"."plans"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "consumers_external_id_key" ON "tollgate"."consumers" USING btree ("external_id");--> statement-breakpoint
CREATE INDEX "consumers_created_at_idx" ON "tollgate"."consumers" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "consumers_plan_idx" ON "tollgate"."consumers" USING btree ("plan_id");--> statement-breakpoint
ALTER TABLE "tollgate"."api_keys" ADD CONSTRAINT "api_keys_consumer_id_consumers_id_fk" FOREIGN KEY ("consumer_id") REFERENCES "tollgate"."consumers"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_keys_consumer_idx" ON "tollgate"."api_keys" USING btree ("consumer_id");--> statement-breakpoint
CREATE INDEX "audit_events_target_id_idx" ON "tollgate"."audit_events" USING btree ("target_id","id");