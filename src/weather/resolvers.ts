import DataLoader from 'dataloader';
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { badUserInput, type Database, type TollgateContext } from '../index';
import { forecastFor } from './climate';
import { observations, stations } from './tables';

type Station = typeof stations.$inferSelect;
type Observation = typeof observations.$inferSelect;

function requireRange(value: number, min: number, max: number, field: string) {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw badUserInput(`"${field}" must be an integer from ${min} to ${max}, got ${value}.`, field);
  }
}

function requireFinite(value: number, min: number, max: number, field: string) {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw badUserInput(`"${field}" must be between ${min} and ${max}, got ${value}.`, field);
  }
}

const STATION_ID = /^[A-Za-z0-9_-]{1,32}$/;

const encodeCursor = (id: string) => Buffer.from(`station:${id}`).toString('base64url');
function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith('station:')) throw badUserInput('"after" is not a cursor returned by this API.', 'after');
  return text.slice('station:'.length);
}

/** Per-request batching: observations for 50 stations are one query, not 50. */
export function createWeatherLoaders(db: Database) {
  const byLast = new Map<number, DataLoader<string, Observation[]>>();
  const stationById = new DataLoader<string, Station | null>(async (ids) => {
    // Anything that is not an id shape (NUL bytes, 10 KB strings) is simply unknown.
    const wellFormed = ids.filter((id) => STATION_ID.test(id));
    const rows = wellFormed.length ? await db.select().from(stations).where(inArray(stations.id, wellFormed)) : [];
    const found = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => found.get(id) ?? null);
  });
  return {
    station: stationById,
    observations(last: number) {
      let loader = byLast.get(last);
      if (!loader) {
        loader = new DataLoader(async (stationIds) => {
          // One query for every station of the page: a LATERAL index scan per station reads
          // only its newest `last` rows, however many observations the table holds.
          const result = await db.execute<{ id: string }>(sql`
            select latest.id from unnest(ARRAY[${sql.join(stationIds.map((s) => sql`${s}`), sql`, `)}]::text[]) as s(station_id)
            cross join lateral (
              select id from ${observations} o where o.station_id = s.station_id
              order by o.observed_at desc, o.id desc limit ${last}
            ) latest`);
          const ids = (Array.isArray(result) ? result : (result as { rows: { id: string }[] }).rows).map((r) => Number(r.id));
          const found = ids.length ? await db.select().from(observations).where(inArray(observations.id, ids)) : [];
          found.sort((a, b) => b.observedAt.getTime() - a.observedAt.getTime() || b.id - a.id);
          return stationIds.map((id) => found.filter((o) => o.stationId === id));
        });
        byLast.set(last, loader);
      }
      return loader;
    },
  };
}
export type WeatherLoaders = ReturnType<typeof createWeatherLoaders>;

/** What the example's resolvers read: Tollgate's context plus the example's own per-request values. */
export type Context = TollgateContext & { db: Database; loaders: WeatherLoaders };

async function stationOrError(ctx: Context, id: string, field: string): Promise<Station> {
  const station = await ctx.loaders.station.load(id);
  if (!station) throw badUserInput(`Unknown station "${id}".`, field);
  return station;
}

export const weatherResolvers = {
  Query: {
    async stations(_: unknown, args: { first: number; after?: string | null; country?: string | null }, ctx: Context) {
      requireRange(args.first, 1, 100, 'first');
      const country = args.country?.toUpperCase();
      if (country !== undefined && !/^[A-Z]{2}$/.test(country)) throw badUserInput('"country" must be a two-letter ISO code.', 'country');
      const after = args.after ? decodeCursor(args.after) : undefined;
      const filter = country ? eq(stations.country, country) : undefined;
      const rows = await ctx.db
        .select()
        .from(stations)
        .where(and(filter, after ? gt(stations.id, after) : undefined))
        .orderBy(asc(stations.id))
        .limit(args.first + 1);
      const [{ n }] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(stations).where(filter);
      const page = rows.slice(0, args.first);
      for (const s of page) ctx.loaders.station.prime(s.id, s);
      return {
        edges: page.map((node) => ({ cursor: encodeCursor(node.id), node })),
        pageInfo: { hasNextPage: rows.length > args.first, endCursor: page.length ? encodeCursor(page[page.length - 1].id) : null },
        totalCount: n,
      };
    },
    station: (_: unknown, args: { id: string }, ctx: Context) => ctx.loaders.station.load(args.id),
    async forecast(_: unknown, args: { stationId: string; days: number }, ctx: Context) {
      requireRange(args.days, 1, 14, 'days');
      const station = await stationOrError(ctx, args.stationId, 'stationId');
      return forecastFor(station, args.days, new Date());
    },
  },
  Mutation: {
    async recordObservation(
      _: unknown,
      { input }: { input: { stationId: string; observedAt?: Date | null; temperatureC: number; humidity: number; windKph: number; precipitationMm?: number | null } },
      ctx: Context,
    ) {
      await stationOrError(ctx, input.stationId, 'input.stationId');
      const observedAt = input.observedAt ?? new Date();
      if (observedAt.getTime() > Date.now() + 60_000) throw badUserInput('"observedAt" may not be in the future.', 'input.observedAt');
      requireFinite(input.temperatureC, -90, 60, 'input.temperatureC');
      requireFinite(input.humidity, 0, 100, 'input.humidity');
      requireFinite(input.windKph, 0, 500, 'input.windKph');
      requireFinite(input.precipitationMm ?? 0, 0, 2000, 'input.precipitationMm');
      const [row] = await ctx.db
        .insert(observations)
        .values({ ...input, observedAt, precipitationMm: input.precipitationMm ?? 0 })
        .returning();
      return row;
    },
  },
  Station: {
    observations(station: Station, args: { last: number }, ctx: Context) {
      requireRange(args.last, 1, 100, 'last');
      return ctx.loaders.observations(args.last).load(station.id);
    },
  },
};
