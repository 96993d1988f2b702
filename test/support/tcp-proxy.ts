import net from 'node:net';

/**
 * A TCP proxy in front of a real service, so a test can break the service for its own
 * connections without touching the machine's shared server:
 *  - cut: every connection dropped, new ones refused (the service is down);
 *  - freeze: connections stay open and new ones are accepted, but nothing is forwarded either way
 *    (the service is overloaded, stopped, or behind a half-open connection: the worst case);
 *  - dropReplies: requests reach the service and run, their replies are lost (a connection that
 *    dies after the command was sent: the client cannot know whether it ran);
 *  - restore / thaw: back to normal.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let server: net.Server | null = null;
  let port = 0;
  let frozen = false;

  const link = (pair: { client: net.Socket; upstream: net.Socket }) => {
    pair.client.pipe(pair.upstream);
    pair.upstream.pipe(pair.client);
  };
  const unlink = (pair: { client: net.Socket; upstream: net.Socket }) => {
    pair.client.unpipe(pair.upstream);
    pair.upstream.unpipe(pair.client);
    pair.client.pause();
    pair.upstream.pause();
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(target);
        const pair = { client, upstream };
        pairs.add(pair);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => (sockets.delete(s), pairs.delete(pair), s === client ? upstream.destroy() : client.destroy()));
          s.on('error', () => s.destroy());
        }
        if (frozen) unlink(pair);
        else link(pair);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        server!.off('error', reject);
        server!.on('error', () => undefined);
        resolve();
      });
    });

  await listen();
  return {
    get port() {
      return port;
    },
    /** Drops every connection and refuses new ones. */
    async cut() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => (server?.listening ? server.close(resolve) : resolve(undefined)));
    },
    restore: listen,
    /** Keeps every connection open and accepts new ones, but forwards nothing. */
    freeze() {
      frozen = true;
      for (const pair of pairs) unlink(pair);
    },
    /** Lets requests through but swallows every reply (the service works; its answers are lost). */
    dropReplies() {
      for (const pair of pairs) {
        pair.upstream.unpipe(pair.client);
        pair.upstream.on('data', () => undefined);
      }
    },
    thaw() {
      frozen = false;
      for (const pair of pairs) {
        link(pair);
        pair.client.resume();
        pair.upstream.resume();
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => (server?.listening ? server.close(resolve) : resolve(undefined)));
    },
  };
}
