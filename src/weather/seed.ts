import { sql } from 'drizzle-orm';
import type { Database } from '../index';
import { observations, stations } from './tables';
import { observationAt } from './climate';
import { STATIONS } from './stations';

const HOURS_OF_HISTORY = 48;

/** Fills the example tables on first start (empty `stations`); later starts change nothing. */
export async function seedWeather(db: Database, now = new Date()): Promise<boolean> {
  const [{ n }] = await db.select({ n: sql<number>`count(*)::int` }).from(stations);
  if (n > 0) return false;
  const rows = STATIONS.map(([id, name, country, latitude, longitude, elevation]) => ({ id, name, country, latitude, longitude, elevation }));
  const lastHour = Math.floor(now.getTime() / 3_600_000) * 3_600_000;
  const readings = rows.flatMap((station) =>
    Array.from({ length: HOURS_OF_HISTORY }, (_, i) => {
      const observedAt = new Date(lastHour - i * 3_600_000);
      return { stationId: station.id, observedAt, ...observationAt(station, observedAt) };
    }),
  );
  await db.transaction(async (tx) => {
    await tx.insert(stations).values(rows).onConflictDoNothing();
    await tx.insert(observations).values(readings);
  });
  return true;
}
