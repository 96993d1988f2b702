import { displayStart, generateKey, hashKey, parseKey } from '../../src/keys/format';

describe('key format', () => {
  it('generates prefix_body+checksum keys that parse', () => {
    const key = generateKey('tg');
    expect(key).toMatch(/^tg_[0-9A-Za-z]{38}$/);
    expect(parseKey(key, 'tg')).toEqual({ ok: true, key });
  });

  it('draws a new body every time (CSPRNG, no repeats in 10k keys)', () => {
    const keys = new Set(Array.from({ length: 10_000 }, () => generateKey('tg')));
    expect(keys.size).toBe(10_000);
  });

  it('refuses any single-character change through the checksum', () => {
    const key = generateKey('tg');
    const i = 3 + 10;
    const swapped = key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
    expect(parseKey(swapped, 'tg')).toEqual({ ok: false, reason: 'checksum' });
  });

  it.each([
    ['empty', ''],
    ['wrong prefix', generateKey('xx')],
    ['truncated', generateKey('tg').slice(0, -1)],
    ['non-base62', 'tg_' + 'é'.repeat(38)],
    ['huge', 'tg_' + 'a'.repeat(65_536)],
  ])('refuses a %s key as malformed', (_name, candidate) => {
    expect(parseKey(candidate, 'tg')).toEqual({ ok: false, reason: 'malformed' });
  });

  it('hashes with SHA-256 hex and shows only a short start', () => {
    const key = generateKey('tg');
    expect(hashKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashKey(key)).not.toContain(key.slice(3));
    expect(displayStart(key, 'tg')).toBe(key.slice(0, 7));
  });
});
