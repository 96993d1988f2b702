import net from 'node:net';

/**
 * A TCP proxy in front of a real service, so a test can break the service for its own
 * connections without touching the machine's shared server. One state at a time:
 *  - open: everything forwarded both ways (the start, and after restore or thaw);
 *  - frozen (freeze): connections stay open and new ones are accepted, but nothing is forwarded
 *    either way (the service is overloaded, stopped, or behind a half-open connection: the worst
 *    case); held bytes are delivered, once, on thaw;
 *  - dropping (dropReplies): requests reach the service and run, their replies are lost (a
 *    connection that dies after the command was sent: the client cannot know whether it ran);
 *  - cut: every connection dropped, new ones reset at once (the service is down). The port stays
 *    bound: released and bound again on restore, it could be taken meanwhile by any other
 *    process binding port 0 — another test run on the machine;
 *  - closed: for good.
 * Every method moves to its state and does nothing when already there; the pipes of each
 * connection are set from the state, never added on top of what is there, so no sequence of
 * calls can forward a byte twice.
 */
type State = 'open' | 'frozen' | 'dropping' | 'cut' | 'closed';

type Pair = {
  client: net.Socket;
  upstream: net.Socket;
  /** client → upstream piped */
  up: boolean;
  /** upstream → client piped */
  down: boolean;
  /** upstream's replies read and discarded */
  sink: boolean;
};

const discard = () => undefined;

export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const pairs = new Set<Pair>();
  let server: net.Server | null = null;
  let port = 0;
  let state: State = 'open';
  /** An error of the listening socket (which Node may close it for): said, not swallowed. */
  let listenerError: Error | undefined;

  /** Makes one connection's forwarding match the state, whatever it was before. */
  const apply = (pair: Pair) => {
    const up = state === 'open' || state === 'dropping';
    const down = state === 'open';
    const sink = state === 'dropping';
    if (up !== pair.up) {
      if (up) pair.client.pipe(pair.upstream);
      else pair.client.unpipe(pair.upstream);
      pair.up = up;
    }
    if (down !== pair.down) {
      if (down) pair.upstream.pipe(pair.client);
      else pair.upstream.unpipe(pair.client);
      pair.down = down;
    }
    if (sink !== pair.sink) {
      if (sink) pair.upstream.on('data', discard);
      else pair.upstream.off('data', discard);
      pair.sink = sink;
    }
    // unpipe pauses a stream left without pipes; pipe and a data listener resume it. Say which.
    if (up) pair.client.resume();
    else pair.client.pause();
    if (down || sink) pair.upstream.resume();
    else pair.upstream.pause();
  };

  const enter = (next: State) => {
    state = next;
    for (const pair of pairs) apply(pair);
  };

  const dropConnections = () => {
    for (const s of sockets) s.destroy();
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const created = net.createServer((client) => {
        if (state === 'cut') {
          client.on('error', () => undefined);
          client.resetAndDestroy(); // the client sees its connection reset, as from a stopped service
          return;
        }
        const upstream = net.connect(target);
        const pair: Pair = { client, upstream, up: false, down: false, sink: false };
        pairs.add(pair);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => (sockets.delete(s), pairs.delete(pair), s === client ? upstream.destroy() : client.destroy()));
          s.on('error', () => s.destroy());
        }
        apply(pair);
      });
      created.once('error', reject);
      created.listen(0, '127.0.0.1', () => {
        port = (created.address() as net.AddressInfo).port;
        created.off('error', reject);
        created.on('error', (error) => (listenerError = error));
        created.on('close', () => {
          if (state !== 'closed') listenerError ??= new Error('listening socket closed by itself');
        });
        server = created;
        resolve();
      });
    });

  const usable = (action: string) => {
    if (state === 'closed') throw new Error(`tcp proxy: ${action} after close`);
  };

  await listen();
  return {
    get port() {
      return port;
    },
    get state(): State {
      return state;
    },
    get listenerError(): Error | undefined {
      return listenerError;
    },
    /** Drops every connection and resets new ones. */
    async cut() {
      usable('cut');
      if (state === 'cut') return;
      state = 'cut';
      dropConnections();
    },
    /** Back to normal from any state: new connections forwarded again, both ways. */
    async restore() {
      usable('restore');
      enter('open');
    },
    /** Keeps every connection open and accepts new ones, but forwards nothing. */
    freeze() {
      usable('freeze');
      if (state === 'cut') throw new Error('tcp proxy: freeze while cut (restore first)');
      enter('frozen');
    },
    /** Lets requests through but swallows every reply (the service works; its answers are lost). */
    dropReplies() {
      usable('dropReplies');
      if (state === 'cut') throw new Error('tcp proxy: dropReplies while cut (restore first)');
      enter('dropping');
    },
    /** Back to forwarding both ways after freeze or dropReplies; a cut needs restore. */
    thaw() {
      usable('thaw');
      if (state === 'cut') throw new Error('tcp proxy: thaw while cut (restore first)');
      enter('open');
    },
    async close() {
      if (state === 'closed') return;
      state = 'closed';
      dropConnections();
      const listening = server;
      server = null;
      await new Promise((resolve) => (listening?.listening ? listening.close(resolve) : resolve(undefined)));
    },
  };
}
