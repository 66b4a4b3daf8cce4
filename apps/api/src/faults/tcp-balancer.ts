import net from "node:net";

export type Balancer = { url: string; close: () => Promise<void> };

/**
 * A TCP load balancer in front of API instances, as nginx or an ALB would be: each new
 * connection goes to the next backend in turn; a backend refusing connections (stopped,
 * or draining after SIGTERM) is skipped for the next one.
 */
export async function startBalancer(backends: string[]): Promise<Balancer> {
  const targets = backends.map((url) => new URL(url));
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    client.pause();
    const first = next++;
    const tryBackend = (attempt: number) => {
      if (attempt >= targets.length) return client.destroy();
      const target = targets[(first + attempt) % targets.length]!;
      const upstream = net.connect(Number(target.port), target.hostname);
      let connected = false;
      upstream.on("error", () => {
        upstream.destroy();
        if (connected) client.destroy();
        else tryBackend(attempt + 1);
      });
      upstream.once("connect", () => {
        connected = true;
        sockets.add(upstream);
        // Ends travel through the pipes (what was sent before arrives, a close frame included).
        upstream.on("close", () => sockets.delete(upstream));
        client.on("error", () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryBackend(0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
