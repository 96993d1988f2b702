-- IF NOT EXISTS: databases from before the example had its own migrations already hold these.
CREATE TABLE IF NOT EXISTS "observations" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"station_id" text NOT NULL,
	"observed_at" timestamp with time zone NOT NULL,
	"temperature_c" double precision NOT NULL,
	"humidity" double precision NOT NULL,
	"wind_kph" double precision NOT NULL,
	"precipitation_mm" double precision NOT NULL
);
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "stations" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"country" text NOT NULL,
	"latitude" double precision NOT NULL,
	"longitude" double precision NOT NULL,
	"elevation" integer NOT NULL
);
--> statement-breakpoint
DO $$ BEGIN
  ALTER TABLE "observations" ADD CONSTRAINT "observations_station_id_stations_id_fk" FOREIGN KEY ("station_id") REFERENCES "public"."stations"("id") ON DELETE no action ON UPDATE no action;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "observations_station_time_idx" ON "observations" USING btree ("station_id","observed_at");--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "stations_country_idx" ON "stations" USING btree ("country","id");