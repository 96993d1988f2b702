import net from 'node:net';
import { startTcpProxy } from './tcp-proxy';
import { until } from './wait';

// The fault proxy is itself a test instrument: if it duplicates or loses bytes, every fault test
// built on it measures the proxy instead of the product. A line-echo service counts what it
// receives; every mode change, repeated or in any order, must leave each connection forwarding
// each byte at most once (exactly once when open).
describe('TCP fault proxy', () => {
  let upstream: net.Server;
  let received = '';
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let client: net.Socket;
  let replies = '';

  beforeEach(async () => {
    received = '';
    replies = '';
    upstream = net.createServer((s) => {
      s.on('data', (d) => {
        received += d.toString();
        s.write(d); // echo
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    proxy = await startTcpProxy({ host: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port });
    client = await connect();
  });
  afterEach(async () => {
    client?.destroy();
    await proxy.close();
    await new Promise((r) => upstream.close(r));
  });

  const connect = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(proxy.port, '127.0.0.1', () => resolve(s));
      s.on('data', (d) => (replies += d.toString()));
      s.on('error', reject);
    });
  /** Sends a marker and waits until it came back (so anything duplicated has arrived too). */
  const roundTrip = async (s: net.Socket, marker: string) => {
    s.write(marker);
    await until(() => replies.includes(marker), 5_000);
    // A duplicate would be written in the same tick as the original; one more round trip
    // through both sockets flushes it before we count.
    s.write('.');
    await until(() => replies.endsWith('.'), 5_000);
  };
  const count = (text: string, marker: string) => text.split(marker).length - 1;

  it('forwards each byte once when open', async () => {
    await roundTrip(client, '<a>');
    expect(count(received, '<a>')).toBe(1);
    expect(count(replies, '<a>')).toBe(1);
  });

  it('thaw twice after a freeze forwards each byte once', async () => {
    proxy.freeze();
    proxy.thaw();
    proxy.thaw();
    await roundTrip(client, '<b>');
    expect(count(received, '<b>')).toBe(1);
    expect(count(replies, '<b>')).toBe(1);
  });

  it('thaw without a freeze, and freeze twice, change nothing', async () => {
    proxy.thaw();
    proxy.freeze();
    proxy.freeze();
    proxy.thaw();
    await roundTrip(client, '<c>');
    expect(count(received, '<c>')).toBe(1);
    expect(count(replies, '<c>')).toBe(1);
  });

  it('frozen forwards nothing either way; thawed, what was held arrives once', async () => {
    proxy.freeze();
    client.write('<held>');
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toBe('');
    proxy.thaw();
    await until(() => replies.includes('<held>'), 5_000);
    await roundTrip(client, '<d>');
    expect(count(received, '<held>')).toBe(1);
    expect(count(replies, '<held>')).toBe(1);
  });

  it('dropReplies passes requests once and loses replies; thaw brings replies back, once', async () => {
    proxy.dropReplies();
    proxy.dropReplies();
    client.write('<e>');
    await until(() => received.includes('<e>'), 5_000);
    expect(replies).toBe('');
    proxy.thaw();
    await roundTrip(client, '<f>');
    expect(count(received, '<e>')).toBe(1);
    expect(count(received, '<f>')).toBe(1);
    expect(count(replies, '<f>')).toBe(1);
    expect(replies).not.toContain('<e>');
  });

  it('a connection opened while frozen, or dropping replies, follows the mode', async () => {
    proxy.freeze();
    const late = await connect();
    late.write('<g>');
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toBe('');
    proxy.thaw();
    await until(() => received.includes('<g>'), 5_000);
    proxy.dropReplies();
    const later = await connect();
    later.write('<h>');
    await until(() => received.includes('<h>'), 5_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(replies).not.toContain('<h>');
    late.destroy();
    later.destroy();
  });

  /** How a new connection ends when nothing is forwarded: the error code, or 'closed'. */
  const endOfNewConnection = () =>
    new Promise<string>((resolve) => {
      const s = net.connect(proxy.port, '127.0.0.1');
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      s.on('close', () => resolve('closed'));
    });

  it('cut resets new connections and keeps the port bound, so no other process can take it before restore', async () => {
    const { port } = proxy;
    await proxy.cut();
    expect(await endOfNewConnection()).toBe('ECONNRESET');
    const intruder = net.createServer();
    const bound = await new Promise<string>((resolve) => {
      intruder.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      intruder.listen(port, '127.0.0.1', () => resolve('bound'));
    });
    if (intruder.listening) intruder.close();
    expect(bound).toBe('EADDRINUSE');
    await proxy.restore();
    expect(proxy.port).toBe(port);
    const again = await connect();
    await roundTrip(again, '<port>');
    again.destroy();
  });

  it('restore while listening keeps one listener; cut twice and restore twice work', async () => {
    await proxy.restore();
    await proxy.cut();
    await proxy.cut();
    expect(await endOfNewConnection()).toBe('ECONNRESET');
    expect(() => proxy.freeze()).toThrow(/restore first/);
    expect(() => proxy.thaw()).toThrow(/restore/);
    await proxy.restore();
    await proxy.restore();
    const again = await connect();
    await roundTrip(again, '<i>');
    expect(count(received, '<i>')).toBe(1);
    again.destroy();
    await proxy.close();
    expect(await endOfNewConnection()).toBe('ECONNREFUSED'); // closed for good: nothing listens
  });
});
