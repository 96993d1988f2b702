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

  it('refuses any single-character change through the checksum: every position, every other base62 character', () => {
    const base62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    for (let n = 0; n < 5; n++) {
      const key = generateKey('tg');
      let tried = 0;
      for (let i = 3; i < key.length; i++) {
        for (const c of base62) {
          if (c === key[i]) continue;
          const changed = key.slice(0, i) + c + key.slice(i + 1);
          expect(parseKey(changed, 'tg')).toEqual({ ok: false, reason: 'checksum' });
          tried++;
        }
      }
      expect(tried).toBe(38 * 61);
    }
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
