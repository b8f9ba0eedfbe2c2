import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One Dockerfile instruction: its keyword (upper case) and the rest of its line. */
export interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The repository's Dockerfile, by stage (comments dropped, continuation lines joined). */
export function readDockerfile(): Instruction[][] {
  const text = readFileSync(fileURLToPath(new URL("../../Dockerfile", import.meta.url)), "utf8");
  const lines = text
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const stages: Instruction[][] = [];
  for (const line of lines) {
    const [, keyword = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { keyword: keyword.toUpperCase(), args };
    if (instruction.keyword === "FROM") stages.push([instruction]);
    else if (stages.length === 0) {
      if (instruction.keyword !== "ARG") throw new Error(`${keyword} before FROM`);
    } else stages.at(-1)!.push(instruction);
  }
  return stages;
}

/** The last `keyword` instruction's arguments in `stage`. */
export function lastOf(stage: readonly Instruction[], keyword: string): string | undefined {
  return stage.filter((i) => i.keyword === keyword).at(-1)?.args;
}

/** An exec-form instruction (`["a", "b"]`) of `stage`; shell form throws. */
export function execFormOf(stage: readonly Instruction[], keyword: string): string[] {
  const args = lastOf(stage, keyword);
  if (args === undefined) throw new Error(`no ${keyword} in the final stage`);
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string")) throw new Error(`${keyword} not exec form`);
  return parsed;
}

/** The `ENV` settings of `stage` (`ENV KEY=value` lines). */
export function envOf(stage: readonly Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { keyword, args } of stage) {
    if (keyword !== "ENV") continue;
    for (const [, key, value] of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[key!] = value!.replace(/^"|"$/g, "");
  }
  return env;
}
