// Deterministic weather: the same station and hour always give the same numbers, so the
// seeded data and forecasts are reproducible in tests without storing a dataset of readings.

/** mulberry32: a tiny seeded PRNG; good enough for plausible weather, not for secrets. */
function random(seed: number): number {
  let t = (seed + 0x6d2b79f5) | 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function seedOf(text: string, n: number): number {
  let h = n | 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 2654435761);
  return h;
}

type Place = { id: string; latitude: number; elevation: number };

/** Mean temperature for a place on a day of the year, °C. */
function meanTemperature(place: Place, dayOfYear: number): number {
  const season = Math.cos(((dayOfYear - 200) / 365) * 2 * Math.PI) * Math.sign(place.latitude || 1);
  const amplitude = Math.min(Math.abs(place.latitude) / 6, 10);
  return 31 - 0.4 * Math.abs(place.latitude) + amplitude * season - 0.0065 * place.elevation;
}

function dayOfYear(date: Date): number {
  return Math.floor((date.getTime() - Date.UTC(date.getUTCFullYear(), 0, 1)) / 86_400_000);
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export function observationAt(place: Place, at: Date) {
  const hour = Math.floor(at.getTime() / 3_600_000);
  const r = (n: number) => random(seedOf(place.id, hour * 7 + n));
  const diurnal = Math.sin(((at.getUTCHours() - 9) / 24) * 2 * Math.PI) * 4;
  return {
    temperatureC: round1(meanTemperature(place, dayOfYear(at)) + diurnal + (r(1) - 0.5) * 4),
    humidity: round1(40 + r(2) * 55),
    windKph: round1(r(3) * 35),
    precipitationMm: r(4) < 0.8 ? 0 : round1(r(5) * 6),
  };
}

const SUMMARIES = ['Sunny', 'Partly cloudy', 'Cloudy', 'Showers', 'Rain', 'Windy'] as const;

export function forecastFor(place: Place, days: number, from: Date) {
  const start = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate());
  return Array.from({ length: days }, (_, i) => {
    const date = new Date(start + (i + 1) * 86_400_000);
    const day = Math.floor(date.getTime() / 86_400_000);
    const r = (n: number) => random(seedOf(place.id, day * 11 + n));
    const mean = meanTemperature(place, dayOfYear(date));
    const chance = Math.round(r(1) * 100);
    return {
      date: date.toISOString().slice(0, 10),
      highC: round1(mean + 3 + r(2) * 4),
      lowC: round1(mean - 3 - r(3) * 4),
      precipitationChance: chance,
      summary: chance > 70 ? (r(4) > 0.5 ? 'Rain' : 'Showers') : SUMMARIES[Math.floor(r(5) * 3)] ?? 'Sunny',
    };
  });
}
