import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { configSchema, type SluiceConfig } from "./schema.js";
import { defaultConfigDocument } from "./default-config.js";

/** A configuration problem, with the path of the bad field in the message. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const placeholder = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string value of a parsed document.
 * Done on parsed values, not raw text, so a secret containing YAML syntax cannot change
 * the document's structure.
 */
export function interpolateEnv(value: unknown, env: Env, path: string[] = []): unknown {
  if (typeof value === "string") {
    return value.replace(placeholder, (_match, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== "") return found;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${formatPath(path)}: environment variable ${name} is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolateEnv(item, env, [...path, String(i)]));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = interpolateEnv(item, env, [...path, key]);
    return out;
  }
  return value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? "(root)" : path.map(String).join(".");
}

/** Validates a parsed document; throws ConfigError listing every bad field by path. */
export function parseConfig(document: unknown, env: Env = process.env): SluiceConfig {
  const interpolated = interpolateEnv(document ?? {}, env);
  const result = configSchema.safeParse(interpolated);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${formatPath(issue.path)}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return result.data;
}

/**
 * `${NAME}` is not valid inside a YAML flow mapping (`{ apiKey: ${KEY} }` — braces are
 * flow indicators), yet that is how people write it. So each placeholder is swapped for
 * an inert token before parsing and restored in the parsed strings, where
 * `interpolateEnv` resolves it: the documented syntax parses, and a secret's value is
 * still never parsed as YAML.
 */
function protectPlaceholders(text: string): { text: string; restore: (document: unknown) => unknown } {
  const originals: string[] = [];
  const protectedText = text.replace(placeholder, (match) => `__sluice_env_${originals.push(match) - 1}__`);
  if (originals.length === 0) return { text, restore: (document) => document };
  const token = /__sluice_env_(\d+)__/g;
  const restore = (value: unknown): unknown => {
    if (typeof value === "string") return value.replace(token, (_m, i: string) => originals[Number(i)] ?? _m);
    if (Array.isArray(value)) return value.map(restore);
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = restore(item);
      return out;
    }
    return value;
  };
  return { text: protectedText, restore };
}

/** Parses YAML text (the configuration file's content). */
export function parseConfigText(text: string, env: Env = process.env, source = "config"): SluiceConfig {
  let document: unknown;
  const guarded = protectPlaceholders(text);
  try {
    document = guarded.restore(parseYaml(guarded.text, { prettyErrors: true }));
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  try {
    return parseConfig(document, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
    throw err;
  }
}

/**
 * Loads the configuration: the file named by `--config` / SLUICE_CONFIG, or else the
 * embedded default (demo provider; OpenAI / Anthropic too when their keys are set).
 */
export async function loadConfig(file: string | undefined, env: Env = process.env): Promise<SluiceConfig> {
  if (file === undefined || file === "") return parseConfig(defaultConfigDocument(env), env);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(
      `cannot read configuration file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseConfigText(text, env, file);
}
