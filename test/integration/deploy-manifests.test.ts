import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseConfigText } from "../../src/config/load-config.js";
import type { SluiceConfig } from "../../src/config/schema.js";
import { parseListenAddress } from "../../src/server/listen-address.js";
import { execFormOf, type Instruction, lastOf, readDockerfile } from "../helpers/dockerfile.js";

// Dockerfile and deploy/kubernetes/ as an operator uses them, checked without a container
// engine or a cluster: the image runs node with `npm start`'s flags as a non-root user, the
// manifests agree with each other (ports, names, labels, the config's path), the shutdown timings
// fit the drain, and the ConfigMap's sluice.yaml is a configuration Sluice accepts.

const repoFile = (path: string): string => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const kubernetesDir = repoFile("deploy/kubernetes");

// --- Kubernetes objects: the fields these checks read ------------------------------------------

type Labels = Record<string, string>;
interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: unknown;
  tcpSocket?: unknown;
  exec?: unknown;
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  envFrom?: Array<{ secretRef?: { name: string } }>;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodTemplate {
  metadata: { labels: Labels; annotations?: Record<string, string> };
  spec: {
    terminationGracePeriodSeconds?: number;
    securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
    containers: Container[];
    volumes?: Array<{
      name: string;
      configMap?: { name: string; items?: Array<{ key: string; path: string }> };
      emptyDir?: object;
    }>;
  };
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Labels };
  // Each kind's own spec; read through the typed accessors below.
  spec?: unknown;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels: Labels };
  template: PodTemplate;
}
interface ServiceSpec {
  clusterIP?: string;
  selector: Labels;
  ports: Array<{ name: string; port: number; targetPort: number | string; appProtocol?: string }>;
}
interface HpaSpec {
  scaleTargetRef: { apiVersion: string; kind: string; name: string };
  minReplicas: number;
  maxReplicas: number;
  metrics: Array<{ type: string; resource?: { name: string; target: { type: string; averageUtilization?: number } } }>;
  behavior?: { scaleDown?: { stabilizationWindowSeconds?: number } };
}
interface PdbSpec {
  selector: { matchLabels: Labels };
  minAvailable?: number | string;
  maxUnavailable?: number | string;
}
interface NetworkPolicySpec {
  podSelector: { matchLabels: Labels };
  ingress?: Array<{
    from?: Array<{ podSelector?: { matchLabels?: Labels }; namespaceSelector?: object }>;
    ports?: Array<{ port: number | string }>;
  }>;
}

/** Every document of every deploy/kubernetes/*.yaml, with the file it came from. */
function readManifests(): Array<K8sObject & { file: string }> {
  const files = readdirSync(kubernetesDir).filter((file) => /\.ya?ml$/.test(file));
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(`${kubernetesDir}/${file}`, "utf8")).flatMap((document) => {
      if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map(String).join("; ")}`);
      const object = document.toJS() as K8sObject | null;
      return object === null ? [] : [{ ...object, file }];
    }),
  );
}

const manifests = readManifests();

function find(kind: string, name: string): K8sObject {
  const found = manifests.filter((object) => object.kind === kind && object.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind} "${name}", found ${found.length}`);
  return found[0]!;
}
const deploymentSpec = (name: string) => find("Deployment", name).spec as DeploymentSpec;
const serviceSpec = (name: string) => find("Service", name).spec as ServiceSpec;

/** A label selector selects these labels: non-empty, and every entry is among them. */
function selects(selector: Labels | undefined, labels: Labels): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

function container(spec: DeploymentSpec, name: string): Container {
  const found = spec.template.spec.containers.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no container "${name}"`);
  return found;
}

function containerPort(c: Container, name: string): number {
  const port = c.ports?.find((p) => p.name === name)?.containerPort;
  if (port === undefined) throw new Error(`container ${c.name} has no port named "${name}"`);
  return port;
}

/** The container port a Service port's targetPort lands on (by name or number). */
function targetContainerPort(c: Container, targetPort: number | string): number | undefined {
  if (typeof targetPort === "number") return c.ports?.some((p) => p.containerPort === targetPort) ? targetPort : undefined;
  return c.ports?.find((p) => p.name === targetPort)?.containerPort;
}

function preStopSleepSeconds(c: Container): number {
  const preStop = c.lifecycle?.preStop;
  if (preStop?.sleep !== undefined) return preStop.sleep.seconds;
  const command = preStop?.exec?.command ?? [];
  const seconds = command[0] === "sleep" && command.length === 2 ? Number(command[1]) : Number.NaN;
  if (!Number.isFinite(seconds)) throw new Error(`preStop is not a sleep: ${JSON.stringify(preStop)}`);
  return seconds;
}

// --- The gateway's Deployment, its container and its configuration -----------------------------

const gateway = deploymentSpec("sluice");
const sluice = container(gateway, "sluice");
const podLabels = gateway.template.metadata.labels;
const grpcPort = containerPort(sluice, "grpc");
const adminPort = containerPort(sluice, "admin");

/** `--config FILE` as the container runs it: its args, else the image's CMD. */
function configPath(args: readonly string[]): string {
  const i = args.indexOf("--config");
  if (i < 0 || args[i + 1] === undefined) throw new Error(`no --config in ${JSON.stringify(args)}`);
  return args[i + 1]!;
}

/** The ConfigMap file mounted at `path` in the gateway container. */
function mountedConfigText(path: string): string {
  const mount = sluice.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  if (mount === undefined) throw new Error(`nothing is mounted where ${path} is`);
  const volume = gateway.template.spec.volumes?.find((v) => v.name === mount.name);
  if (volume?.configMap === undefined) throw new Error(`${mount.mountPath} is not a ConfigMap volume`);
  const file = path.slice(mount.mountPath.length + 1);
  const key = volume.configMap.items === undefined ? file : volume.configMap.items.find((item) => item.path === file)?.key;
  const text = key === undefined ? undefined : find("ConfigMap", volume.configMap.name).data?.[key];
  if (text === undefined) throw new Error(`ConfigMap ${volume.configMap.name} has no file ${file}`);
  return text;
}

/**
 * The environment the Deployment gives the container: literal values, and Secret keys (which must
 * exist in the Secret manifest) with stand-in values. Nothing else: a `${VAR}` in the
 * configuration that the Deployment does not supply fails the parse, as it would fail startup.
 */
function containerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of sluice.env ?? []) {
    const ref = entry.valueFrom?.secretKeyRef;
    if (ref !== undefined) {
      const secret = find("Secret", ref.name);
      expect(Object.keys({ ...secret.data, ...secret.stringData }), `Secret ${ref.name}`).toContain(ref.key);
      env[entry.name] = `stand-in-for-${ref.key}`;
    } else if (entry.value !== undefined) env[entry.name] = entry.value;
  }
  for (const from of sluice.envFrom ?? []) {
    if (from.secretRef === undefined) continue;
    const secret = find("Secret", from.secretRef.name);
    for (const key of Object.keys({ ...secret.data, ...secret.stringData })) env[key] = `stand-in-for-${key}`;
  }
  return env;
}

// --- Dockerfile --------------------------------------------------------------------------

const stages = readDockerfile();
const finalStage = stages.at(-1) ?? [];
const last = (keyword: string): string | undefined => lastOf(finalStage, keyword);
const runs = (stage: Instruction[]): string[] => stage.filter((i) => i.keyword === "RUN").map((i) => i.args);
const execForm = (keyword: string): string[] => execFormOf(finalStage, keyword);

/** package.json's start script: `node FLAGS… bin/sluice.mjs`. */
function startScript(): { flags: string[]; script: string } {
  const pkg = JSON.parse(readFileSync(repoFile("package.json"), "utf8")) as { scripts: Record<string, string> };
  const words = pkg.scripts["start"]!.trim().split(/\s+/);
  expect(words[0]).toBe("node");
  const scriptAt = words.findIndex((word) => /\.m?js$/.test(word));
  expect(scriptAt).toBeGreaterThan(0);
  return { flags: words.slice(1, scriptAt), script: words[scriptAt]! };
}

describe("Dockerfile", () => {
  it("builds in one node:20-bookworm-slim stage (npm ci, npm run build) and runs from another with production dependencies only", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]!.args).toMatch(/^node:20-bookworm-slim(\s+AS\s+\S+)?$/i);
    const buildStage = stages.find((stage) => runs(stage).some((run) => run.includes("npm run build")));
    expect(buildStage, "a stage runs npm run build").toBeDefined();
    expect(buildStage).not.toBe(finalStage);
    expect(runs(buildStage!).some((run) => /\bnpm ci\b/.test(run))).toBe(true);
    const buildName = /\s+AS\s+(\S+)$/i.exec(buildStage![0]!.args)?.[1];
    expect(runs(finalStage).some((run) => /\bnpm ci --omit=dev\b/.test(run))).toBe(true);
    expect(runs(finalStage).join("\n")).not.toMatch(/npm run build|npm install/);
    const fromBuild = finalStage.filter((i) => i.keyword === "COPY" && i.args.includes(`--from=${buildName}`));
    expect(fromBuild.map((i) => i.args.split(/\s+/).at(-2))).toContain("/app/dist");
  });

  it("runs node itself (exec form) with package.json's start flags and launcher; no npm; config at /etc/sluice/sluice.yaml", () => {
    const { flags, script } = startScript();
    const entrypoint = execForm("ENTRYPOINT");
    expect(entrypoint[0]).toBe("node");
    const scriptAt = entrypoint.findIndex((word) => word.endsWith(script));
    expect(scriptAt, `ENTRYPOINT runs ${script}`).toBeGreaterThan(0);
    expect(entrypoint.slice(1, scriptAt)).toEqual(flags);
    // An absolute script path must be where the final stage put dist/.
    const scriptPath = entrypoint[scriptAt]!;
    if (scriptPath.startsWith("/")) expect(scriptPath).toBe(`${last("WORKDIR")}/${script}`);
    const cmd = execForm("CMD");
    expect(configPath(cmd)).toBe("/etc/sluice/sluice.yaml");
    for (const keyword of ["ENTRYPOINT", "CMD"]) expect(last(keyword)).not.toMatch(/\bnpm\b/);
  });

  it("runs as a numeric non-root user, exposes 8080 and 9901, stops with SIGTERM", () => {
    const user = last("USER");
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(last("STOPSIGNAL")).toBe("SIGTERM");
    const exposed = finalStage.filter((i) => i.keyword === "EXPOSE").flatMap((i) => i.args.split(/\s+/));
    expect(exposed).toEqual(expect.arrayContaining(["8080", "9901"]));
    expect(exposed).toEqual(expect.arrayContaining([String(grpcPort), String(adminPort)]));
  });

  it("copies only what .dockerignore lets into the build context", () => {
    const ignore = readFileSync(repoFile(".dockerignore"), "utf8")
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(ignore[0], "an allow-list: everything excluded first").toBe("*");
    const sources = stages
      .flat()
      .filter((i) => i.keyword === "COPY" && !i.args.includes("--from="))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) expect(ignore, `COPY ${source}`).toContain(`!${source}`);
  });
});

// --- deploy/kubernetes ----------------------------------------------------------------------------

describe("deploy/kubernetes", () => {
  it("has every object, none with a namespace (kubectl's -n decides)", () => {
    const kinds = manifests.map((object) => `${object.apiVersion} ${object.kind}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        "v1 ConfigMap",
        "v1 Secret",
        "apps/v1 Deployment",
        "v1 Service",
        "autoscaling/v2 HorizontalPodAutoscaler",
        "policy/v1 PodDisruptionBudget",
      ]),
    );
    for (const object of manifests) expect(object.metadata.namespace, `${object.file} ${object.kind}`).toBeUndefined();
    expect(manifests.some((object) => object.kind === "Namespace")).toBe(false);
  });

  it("the Secret template holds no key", () => {
    const secret = find("Secret", "sluice-provider-keys");
    expect(secret.data).toBeUndefined();
    for (const [key, value] of Object.entries(secret.stringData ?? {})) expect(value, key).toBe("");
  });

  describe("the ConfigMap's sluice.yaml", () => {
    // The same parse as `--config FILE` at startup, with the environment the Deployment provides
    // (in each test, so a parse failure fails the tests, not the file's collection).
    let parsed: SluiceConfig | undefined;
    const sluiceConfig = (): SluiceConfig =>
      (parsed ??= parseConfigText(mountedConfigText(configPath(sluice.args ?? execForm("CMD"))), containerEnv(), "sluice.yaml"));

    it("is a valid Sluice configuration, with every ${VAR} supplied by the Deployment", () => {
      expect(Object.keys(sluiceConfig().tenants).length).toBeGreaterThan(0);
      expect(sluiceConfig().providers["openai"]).toMatchObject({ apiKey: "stand-in-for-OPENAI_API_KEY" });
    });

    it("listens on every interface at the container's grpc port, admin (metrics) at the admin port", () => {
      const listen = parseListenAddress(sluiceConfig().listen);
      expect(["0.0.0.0", "::"]).toContain(listen.host);
      expect(listen.port).toBe(grpcPort);
      const admin = parseListenAddress(sluiceConfig().admin.listen ?? "");
      expect(["0.0.0.0", "::"]).toContain(admin.host);
      expect(admin.port).toBe(adminPort);
      expect(sluiceConfig().telemetry.metrics.expose).toBe("admin");
      const annotations = gateway.template.metadata.annotations ?? {};
      expect(annotations["prometheus.io/scrape"]).toBe("true");
      expect(annotations["prometheus.io/port"]).toBe(String(adminPort));
      expect(annotations["prometheus.io/path"]).toBe(sluiceConfig().telemetry.metrics.path);
    });

    it("state.redis.url names the Redis Service's port, which reaches the Redis pods", () => {
      const url = new URL((sluiceConfig() as unknown as { state: { redis: { url: string } } }).state.redis.url);
      expect(url.protocol).toBe("redis:");
      const service = serviceSpec(url.hostname);
      const port = service.ports.find((p) => p.port === Number(url.port || 6379));
      expect(port, `Service ${url.hostname} port ${url.port}`).toBeDefined();
      const redis = manifests.find(
        (object) =>
          object.kind === "Deployment" && selects(service.selector, (object.spec as DeploymentSpec).template.metadata.labels),
      );
      expect(redis, `a Deployment behind Service ${url.hostname}`).toBeDefined();
      const redisContainer = (redis!.spec as DeploymentSpec).template.spec.containers[0]!;
      expect(redisContainer.image).toMatch(/^redis:7(\b|$)/);
      expect(targetContainerPort(redisContainer, port!.targetPort)).toBe(6379);
    });

    it("shutdown fits: grace period > preStop sleep + drainTimeoutMs + 5 s margin; liveness never kills a draining pod", () => {
      const preStopMs = preStopSleepSeconds(sluice) * 1000;
      expect(preStopMs).toBeGreaterThan(0);
      const graceMs = (gateway.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      expect(graceMs).toBeGreaterThan(preStopMs + sluiceConfig().server.drainTimeoutMs + 5_000);
      // Draining answers NOT_SERVING; the liveness probe restarts after failureThreshold failures in a row.
      const liveness = sluice.livenessProbe!;
      const firstRestartMs = ((liveness.failureThreshold ?? 3) - 1) * (liveness.periodSeconds ?? 10) * 1000;
      expect(firstRestartMs).toBeGreaterThan(sluiceConfig().server.drainTimeoutMs);
    });
  });

  it("the Deployment: 3 replicas, its selector selects its pods, the image's ENTRYPOINT is not overridden", () => {
    expect(gateway.replicas).toBe(3);
    expect(selects(gateway.selector.matchLabels, podLabels)).toBe(true);
    expect(sluice.command).toBeUndefined();
  });

  it("startup, readiness and liveness probes are Kubernetes gRPC probes on the port the Service's grpc port targets", () => {
    const service = serviceSpec("sluice");
    expect(selects(service.selector, podLabels)).toBe(true);
    const grpc = service.ports.find((p) => p.name === "grpc");
    expect(grpc?.appProtocol).toBe("kubernetes.io/h2c");
    expect(targetContainerPort(sluice, grpc!.targetPort)).toBe(grpcPort);
    const admin = service.ports.find((p) => p.name === "admin");
    expect(targetContainerPort(sluice, admin!.targetPort)).toBe(adminPort);
    for (const probe of [sluice.startupProbe, sluice.readinessProbe, sluice.livenessProbe]) {
      expect(probe).toBeDefined();
      expect(probe!.grpc?.port).toBe(grpcPort);
      expect([probe!.httpGet, probe!.tcpSocket, probe!.exec]).toEqual([undefined, undefined, undefined]);
    }
    const headless = serviceSpec("sluice-headless");
    expect(headless.clusterIP).toBe("None");
    expect(selects(headless.selector, podLabels)).toBe(true);
  });

  it("the gateway container: non-root (the image's user), read-only root with a writable /tmp, no escalation, no capabilities, sized", () => {
    const pod = gateway.template.spec.securityContext ?? {};
    const own = sluice.securityContext ?? {};
    expect(own.runAsNonRoot ?? pod.runAsNonRoot).toBe(true);
    expect(String(own.runAsUser ?? pod.runAsUser)).toBe(last("USER")?.split(":")[0]);
    expect(own.readOnlyRootFilesystem).toBe(true);
    expect(own.allowPrivilegeEscalation).toBe(false);
    expect(own.privileged ?? false).toBe(false);
    expect(own.capabilities?.drop).toContain("ALL");
    expect(own.capabilities?.add ?? []).toEqual([]);
    // Heap snapshots (admin /debug/pprof/heap) are written to os.tmpdir() first.
    const tmp = sluice.volumeMounts?.find((m) => m.mountPath === "/tmp");
    expect(gateway.template.spec.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
    expect(sluice.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(sluice.resources?.limits).toMatchObject({ memory: expect.any(String) });
  });

  it("the HPA scales the gateway Deployment 3–20 on CPU utilisation (of its CPU request), slowly down", () => {
    const hpa = find("HorizontalPodAutoscaler", "sluice").spec as HpaSpec;
    expect(hpa.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "sluice" });
    expect([hpa.minReplicas, hpa.maxReplicas]).toEqual([3, 20]);
    const cpu = hpa.metrics.find((metric) => metric.type === "Resource" && metric.resource?.name === "cpu");
    expect(cpu?.resource?.target.type).toBe("Utilization");
    expect(cpu?.resource?.target.averageUtilization).toBeGreaterThan(0);
    expect(sluice.resources?.requests?.["cpu"]).toBeDefined();
    expect(hpa.behavior?.scaleDown?.stabilizationWindowSeconds).toBeGreaterThan(0);
  });

  it("the PodDisruptionBudget selects the gateway pods and keeps at least 2 of the minimum 3", () => {
    const pdb = find("PodDisruptionBudget", "sluice").spec as PdbSpec;
    expect(selects(pdb.selector.matchLabels, podLabels)).toBe(true);
    expect(pdb.minAvailable === 2 || pdb.maxUnavailable === 1).toBe(true);
  });

  it("network policies: the grpc port open to all, admin and Redis fenced", () => {
    const gatewayPolicy = find("NetworkPolicy", "sluice").spec as NetworkPolicySpec;
    expect(selects(gatewayPolicy.podSelector.matchLabels, podLabels)).toBe(true);
    const open = gatewayPolicy.ingress?.filter((rule) => rule.from === undefined) ?? [];
    expect(open.flatMap((rule) => rule.ports?.map((p) => p.port) ?? [])).toEqual([grpcPort]);
    const redisPolicy = find("NetworkPolicy", "sluice-redis").spec as NetworkPolicySpec;
    expect(selects(redisPolicy.podSelector.matchLabels, deploymentSpec("sluice-redis").template.metadata.labels)).toBe(true);
    for (const rule of redisPolicy.ingress ?? []) {
      expect(rule.from?.length).toBeGreaterThan(0);
      for (const peer of rule.from ?? []) expect(selects(peer.podSelector?.matchLabels, podLabels)).toBe(true);
    }
  });
});
