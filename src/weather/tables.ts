import { bigserial, doublePrecision, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

// The example API's own tables (public schema), migrated from drizzle/weather/: nothing of
// Tollgate's is here, and nothing of these is in Tollgate's migrations.

export const stations = pgTable(
  'stations',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    country: text('country').notNull(),
    latitude: doublePrecision('latitude').notNull(),
    longitude: doublePrecision('longitude').notNull(),
    elevation: integer('elevation').notNull(),
  },
  (t) => [index('stations_country_idx').on(t.country, t.id)],
);

export const observations = pgTable(
  'observations',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    stationId: text('station_id').notNull().references(() => stations.id),
    observedAt: timestamp('observed_at', { withTimezone: true }).notNull(),
    temperatureC: doublePrecision('temperature_c').notNull(),
    humidity: doublePrecision('humidity').notNull(),
    windKph: doublePrecision('wind_kph').notNull(),
    precipitationMm: doublePrecision('precipitation_mm').notNull(),
  },
  (t) => [index('observations_station_time_idx').on(t.stationId, t.observedAt)],
);
