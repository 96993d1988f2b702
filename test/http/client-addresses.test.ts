import type { IncomingMessage } from 'node:http';
import { loadConfig } from '../../src/config';
import { addressBucket } from '../../src/gates/addresses';
import { generateKey } from '../../src/keys/format';
import { clientIp } from '../../src/tollgate';
import { openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';

const Q = '{ __typename }';
const from = (xff: string) => ({ 'x-forwarded-for': xff });

// Behind one trusted proxy (TRUST_PROXY=true), as the IP gate sees a client: by its address, an
// IPv6 client by its /56. Each test uses addresses (or networks) of its own.
describe('who the IP gate counts (IP_LIMIT=3, AUTH_FAILURE_LIMIT=2, IPv6 by /56)', () => {
  let db: TestDatabase;
  let t: TestServer;
  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, env: { TRUST_PROXY: 'true', IP_LIMIT: '3', IP_LIMIT_DURATION_SECONDS: '600', AUTH_FAILURE_LIMIT: '2' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('IPv6 addresses rotated within one /56 share one IP budget; another /56 has its own', async () => {
    // 2001:db8:1:100::/56 holds 2001:db8:1:100:: to 2001:db8:1:1ff:ffff:ffff:ffff:ffff
    for (const address of ['2001:db8:1:100::1', '2001:db8:1:1ff:ffff::2', '2001:db8:1:1aa:1234::3']) {
      expect((await t.gql(Q, {}, undefined, from(address))).status).toBe(200);
    }
    const refused = await t.gql(Q, {}, undefined, from('2001:db8:1:1bb::9'));
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'ip', limit: 3 });
    expect((await t.gql(Q, {}, undefined, from('2001:db8:1:200::1'))).status).toBe(200);
  });

  it('an IPv4-mapped IPv6 address is the IPv4 address: one budget for both spellings', async () => {
    expect((await t.gql(Q, {}, undefined, from('::ffff:198.51.100.9'))).status).toBe(200);
    expect((await t.gql(Q, {}, undefined, from('198.51.100.9'))).status).toBe(200);
    expect((await t.gql(Q, {}, undefined, from('::FFFF:c633:6409'))).status).toBe(200); // the same address in hex
    expect((await t.gql(Q, {}, undefined, from('198.51.100.9'))).status).toBe(429);
  });

  it('failed authentications from addresses rotated within one /56 block the whole /56, not its neighbours', async () => {
    for (const address of ['2001:db8:2:300::1', '2001:db8:2:3ff::2']) {
      expect((await t.gql(Q, {}, generateKey('tg'), from(address))).status).toBe(401);
    }
    const guess = await t.gql(Q, {}, generateKey('tg'), from('2001:db8:2:3cc::4'));
    expect(guess.status).toBe(429);
    expect(guess.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'auth-failures' });
    expect((await t.gql(Q, {}, generateKey('tg'), from('2001:db8:2:400::1'))).status).toBe(401);
  });

  it('X-Forwarded-For entries that are not IP addresses are never a budget key: they count as the proxy that passed them on', async () => {
    // Behind one proxy, the entry the proxy appended is the client. Junk there (a proxy's
    // "unknown", a client's rotation) is skipped towards us — here to the socket's peer,
    // 127.0.0.1 — never to the client's own entries further left.
    for (const xff of ['unknown', 'not-an-ip', '203.0.113.77, _hidden']) {
      expect((await t.gql(Q, {}, undefined, from(xff))).status).toBe(200);
    }
    const refused = await t.gql(Q, {}, undefined, from('1.2.3.4:5678')); // an address with a port is not an address either
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ gate: 'ip', limit: 3 });
    // no header at all: the socket's peer, the same budget
    expect((await t.gql(Q, {}, undefined)).status).toBe(429);
    // the client's own left-hand entry was not counted either
    expect((await t.gql(Q, {}, undefined, from('203.0.113.77'))).status).toBe(200);
  });
});

describe('addressBucket: IPV6_PREFIX_LENGTH', () => {
  it.each([
    ['198.51.100.9', 56, '198.51.100.9'],
    ['::ffff:198.51.100.9', 56, '198.51.100.9'],
    ['2001:db8:1:1ff:ffff::2', 56, '2001:db8:1:100::/56'],
    ['2001:DB8:1:1FF:0:0:0:2', 64, '2001:db8:1:1ff::/64'],
    ['2001:db8:1:1ff::2', 128, '2001:db8:1:1ff::2'],
    ['fe80::1%eth0', 128, 'fe80::1'], // a zone is no part of who the client is
    ['fe80::1%42', 128, 'fe80::1'],
    ['2001:db8:1:1ff::2', 1, '::/1'],
    ['unknown', 56, 'unknown'],
  ] as const)('%s by /%i → %s', (ip, bits, bucket) => {
    expect(addressBucket(ip, bits)).toBe(bucket);
  });
  it('is 56 unless set, and must be 1..128', () => {
    expect(loadConfig({}).ipv6PrefixLength).toBe(56);
    expect(loadConfig({ IPV6_PREFIX_LENGTH: '64' }).ipv6PrefixLength).toBe(64);
    expect(() => loadConfig({ IPV6_PREFIX_LENGTH: '0' })).toThrow(/IPV6_PREFIX_LENGTH/);
    expect(() => loadConfig({ IPV6_PREFIX_LENGTH: '129' })).toThrow(/IPV6_PREFIX_LENGTH/);
  });
});

// The library's own reading (Apollo standalone, Express): the same rule as the bundled server's.
describe('clientIp never answers with something that is not an address', () => {
  const req = (xff?: string, ip?: string, peer = '::ffff:10.9.9.9') =>
    ({ headers: xff ? { 'x-forwarded-for': xff } : {}, socket: { remoteAddress: peer }, ...(ip ? { ip } : {}) }) as unknown as IncomingMessage;
  it.each([
    [0, undefined, '10.9.9.9'], // a dual-stack socket's IPv4 peer, unmapped
    [1, 'garbage', '10.9.9.9'],
    [1, '203.0.113.1, unknown', '10.9.9.9'], // not the client-written entry on the left
    [2, '203.0.113.1, unknown', '203.0.113.1'], // the outermost proxy's entry is an address
    [2, 'unknown, 198.51.100.2', '198.51.100.2'], // the outermost's is junk: the next proxy's
    [1, '2001:DB8::1', '2001:db8::1'],
    [1, '127.1', '10.9.9.9'], // inet_aton shorthand is no proxy's spelling
  ] as const)('%i trusted proxies, X-Forwarded-For %s → %s', (hops, xff, expected) => {
    expect(clientIp(req(xff), hops)).toBe(expected);
  });
  it("takes the framework's req.ip only when it is an address", () => {
    expect(clientIp(req('203.0.113.1', '::ffff:192.0.2.7'), 1)).toBe('192.0.2.7');
    expect(clientIp(req('203.0.113.1', 'garbage'), 1)).toBe('203.0.113.1');
  });
});
