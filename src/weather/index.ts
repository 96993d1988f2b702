import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseHandle } from '../index';
import { createWeatherLoaders, weatherResolvers } from './resolvers';
import { seedWeather } from './seed';

/**
 * The example API, put together as any owner would: its own SDL (schema/weather.graphql, with
 * @rateLimit/@cost/@listSize annotations), its own resolvers, its own tables and migrations,
 * and its own per-request values — through Tollgate's public API only.
 */
export async function weatherExample(database: DatabaseHandle) {
  await database.migrate({ folder: path.join(repositoryRoot(), 'drizzle', 'weather'), table: '__weather_migrations', schema: 'public' });
  await seedWeather(database.db);
  return {
    typeDefs: readFileSync(path.join(repositoryRoot(), 'schema', 'weather.graphql'), 'utf8'),
    resolvers: weatherResolvers,
    context: () => ({ db: database.db, loaders: createWeatherLoaders(database.db) }),
  };
}

/** The folder holding schema/ and drizzle/, from src/weather (tsx) or dist/src/weather (compiled). */
function repositoryRoot(): string {
  return [path.resolve(__dirname, '..', '..'), path.resolve(__dirname, '..', '..', '..')].find((dir) => {
    try {
      readFileSync(path.join(dir, 'schema', 'weather.graphql'));
      return true;
    } catch {
      return false;
    }
  })!;
}
