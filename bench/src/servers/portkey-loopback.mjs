// Preloaded into the Portkey gateway (`node --import`): its start script listens on every
// interface and has no host option; the benchmark keeps all traffic on 127.0.0.1, so bind
// every server it creates to loopback. Also exits cleanly on SIGTERM (so `--cpu-prof` works).
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  // @hono/node-server calls listen(port, hostname | undefined, callback).
  if (typeof args[0] === "number") {
    const callback = args.find((arg) => typeof arg === "function");
    return listen.call(this, args[0], "127.0.0.1", callback);
  }
  if (args[0] !== null && typeof args[0] === "object" && "port" in args[0]) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};

process.on("SIGTERM", () => process.exit(0));
