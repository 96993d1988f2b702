import { ConfigError, loadConfig } from '../src/config';

describe('config', () => {
  it('defaults to the embedded database and the memory store', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.dataDir).toBe('.data/pglite');
    expect(config.port).toBe(4000);
    expect(config.keyCacheTtlMs).toBe(30_000);
    expect(config.scopes).toEqual(['admin', 'read', 'write']);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads DATABASE_URL and REDIS_URL', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/x', REDIS_URL: 'redis://cache:6379' });
    expect(config.databaseUrl).toBe('postgres://u@db:5432/x');
    expect(config.redisUrl).toBe('redis://cache:6379');
  });

  it.each([
    ['PORT', 'eighty'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'not a url'],
    ['LIMITS_ON_STORE_FAILURE', 'maybe'],
    ['KEY_CACHE_TTL_SECONDS', '-1'],
    ['TRUST_PROXY', 'yes'],
  ])('fails fast naming %s when it is bad', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it.each([
    [undefined, 0],
    ['false', 0],
    ['true', 1],
    ['2', 2],
  ])('TRUST_PROXY=%s trusts %i proxies', (value, proxies) => {
    expect(loadConfig(value === undefined ? {} : { TRUST_PROXY: value }).trustedProxies).toBe(proxies);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '' }).databaseUrl).toBeUndefined();
  });
});
