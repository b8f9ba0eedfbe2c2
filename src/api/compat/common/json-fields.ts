import type { ConnectError } from "@connectrpc/connect";

/**
 * JSON type guards and field readers the OpenAI and Anthropic request translators share
 * (openai/request.ts, anthropic/request.ts). A refused field is each format's own error:
 * `fieldReaders` takes how the format words an unsupported field and a wrong JSON type.
 */

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A caller's key, quoted at most 64 characters long (errors stay bounded). */
export function cut(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

/** The format's refusals: an unsupported or unknown field, and a field of the wrong JSON type. */
export interface FieldErrors {
  readonly unsupported: (param: string) => ConnectError;
  readonly typeError: (param: string, expected: string) => ConnectError;
}

export interface FieldReaders {
  /** Refuses any key of `value` not in `keys`, by its path `at.key`. */
  onlyKeys(value: Json, at: string, ...keys: string[]): void;
  /** A finite number; `null` is unset. */
  optionalNumber(body: Json, key: string): number | undefined;
  /** A boolean; `null` is unset. `prefix` goes before the key in the error. */
  optionalBoolean(body: Json, key: string, prefix?: string): boolean | undefined;
}

export function fieldReaders({ unsupported, typeError }: FieldErrors): FieldReaders {
  return {
    onlyKeys(value, at, ...keys) {
      for (const key in value) if (!keys.includes(key)) throw unsupported(`${at}.${key}`);
    },
    optionalNumber(body, key) {
      const value = body[key];
      if (value === undefined || value === null) return undefined;
      if (typeof value !== "number" || !Number.isFinite(value)) throw typeError(key, "a number");
      return value;
    },
    optionalBoolean(body, key, prefix = "") {
      const value = body[key];
      if (value === undefined || value === null) return undefined;
      if (typeof value !== "boolean") throw typeError(`${prefix}${key}`, "a boolean");
      return value;
    },
  };
}
