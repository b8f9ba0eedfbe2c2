// The fleet for one run: the fake upstream on the load core, every proxy on the proxy core,
// the target catalog over them, each target verified once. A proxy that cannot start or answer
// correctly is skipped with its reason (the report lists it) — the other targets still run.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { buildTargets } from "./catalog.mjs";
import {
  MAIN_DIR,
  startFake,
  startOtlpSink,
  startPassThrough,
  startPortkey,
  startSluice,
  tracedSluiceEnv,
  writeSluiceConfig,
} from "./servers.mjs";
import { verifyTarget } from "./verify.mjs";
import { workloads } from "./workloads.mjs";

/** CompleteRequest JSON → binary, with the schema Sluice itself was built from (dist/gen). */
async function loadGrpcEncoder() {
  const { fromJson, toBinary } = await import("@bufbuild/protobuf");
  const { CompleteRequestSchema } = await import(
    pathToFileURL(join(MAIN_DIR, "dist", "gen", "sluice", "v1", "chat_service_pb.js")).href
  );
  return (json) => Buffer.from(toBinary(CompleteRequestSchema, fromJson(CompleteRequestSchema, json)));
}

const SERVER_OF = {
  "pass-through": "passThrough",
  "pass-through-h2": "passThrough",
  "sluice-connect": "sluice",
  "sluice-grpc": "sluice",
  "sluice-openai": "sluice",
  "sluice-connect-traced": "sluiceTraced",
  "sluice-connect-cached": "sluiceCached",
  portkey: "portkey",
};

export async function startFleet(ctx) {
  const { settings, log } = ctx;
  const work = workloads(settings);
  const fake = await startFake({ cpu: settings.cpus.load });
  const configFile = writeSluiceConfig(ctx.dir, fake.url, Object.values(work), settings.sluiceLog, settings.sluiceAuth);
  // The same configuration with the response cache on: deterministic requests are answered from it.
  const cachedConfigFile = writeSluiceConfig(
    ctx.dir,
    fake.url,
    Object.values(work),
    settings.sluiceLog,
    settings.sluiceAuth,
    { cache: { ttlSeconds: 300 } },
    "sluice-cached.yaml",
  );
  let otlpSink;
  const starters = {
    passThrough: (nodeArgs) => startPassThrough({ cpu: settings.cpus.proxy, upstreamUrl: fake.url, nodeArgs }),
    sluice: (nodeArgs) => startSluice({ cpu: settings.cpus.proxy, configFile, nodeArgs }),
    // The same Sluice exporting every span (OTLP/HTTP, 100% sampled) to a sink on the load core.
    sluiceTraced: async (nodeArgs) => {
      otlpSink ??= await startOtlpSink({ cpu: settings.cpus.load });
      return startSluice({ cpu: settings.cpus.proxy, configFile, nodeArgs, env: tracedSluiceEnv(otlpSink.url) });
    },
    sluiceCached: (nodeArgs) => startSluice({ cpu: settings.cpus.proxy, configFile: cachedConfigFile, nodeArgs }),
    portkey: (nodeArgs) => startPortkey({ cpu: settings.cpus.proxy, nodeArgs }),
  };
  const wanted = (id) => !settings.targetFilter || settings.targetFilter.has(id) || id.startsWith("direct");
  const servers = { fake };
  const startErrors = {};
  for (const [name, start] of Object.entries(starters)) {
    const needed = Object.entries(SERVER_OF).some(([id, server]) => server === name && wanted(id));
    if (!needed) continue;
    log(`starting ${name}`);
    try {
      servers[name] = await start([]);
    } catch (error) {
      startErrors[name] = error.message.split("\n").slice(0, 6).join(" ").slice(0, 400);
    }
  }
  let encodeGrpc = null;
  let encoderError = "";
  try {
    encodeGrpc = await loadGrpcEncoder();
  } catch (error) {
    encoderError = `cannot encode the gRPC request: ${error.message.slice(0, 200)}`;
  }
  const build = (serverMap) => buildTargets(serverMap, work, encodeGrpc);
  const targets = build(servers).filter((t) => wanted(t.id));
  for (const target of targets) {
    if (!target.server) {
      target.skip = startErrors[SERVER_OF[target.id]] ?? "not started";
    } else if (target.id === "sluice-grpc" && !encodeGrpc) {
      target.skip = encoderError;
    } else {
      const result = await verifyTarget(target);
      if (result.ok) target.verified = { dataBytes: result.dataBytes };
      else target.skip = result.reason;
    }
    log(`  ${target.id}: ${target.skip ? `skipped — ${target.skip}` : "ok"}`);
  }

  /** Every server started, fresh ones included: their stderr goes into the report (warnings, leaks). */
  const started = Object.entries(servers).map(([name, server]) => ({ name, server }));

  /** A new instance of a target's proxy (clean memory, or extra node flags such as --cpu-prof). */
  async function startFresh(id, nodeArgs = []) {
    const name = SERVER_OF[id];
    const server = await starters[name](nodeArgs);
    started.push({ name: `${name} (fresh: ${id}${nodeArgs.length ? ` ${nodeArgs[0]}` : ""})`, server });
    const target = build({ ...servers, [name]: server }).find((t) => t.id === id);
    return { ...target, verified: targets.find((t) => t.id === id)?.verified };
  }

  async function stopAll() {
    await Promise.all([...Object.values(servers), ...(otlpSink ? [otlpSink] : [])].map((server) => server.stop()));
  }

  /** The last stderr lines of every server that wrote any. */
  function stderrTails() {
    return started.map(({ name, server }) => ({ name, text: server.stderrTail().trim() })).filter((t) => t.text);
  }

  return { fake, servers, targets, startFresh, stopAll, stderrTails, configFile };
}
