import { readFileSync } from "node:fs";

/**
 * Sluice's version, from its package.json: found by walking up from this module (src/app in
 * development, dist/src/app once built), so it is right however Sluice is started.
 */
export function sluiceVersion(): string {
  let dir = new URL(".", import.meta.url);
  for (let depth = 0; depth < 5; depth++) {
    try {
      const manifest = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: string; version?: string };
      if (manifest.name === "sluice" && typeof manifest.version === "string") return manifest.version;
    } catch {
      // Not here: one level up.
    }
    dir = new URL("..", dir);
  }
  return "unknown";
}
