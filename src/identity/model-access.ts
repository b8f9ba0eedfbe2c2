import type { ModelAccess } from "./identity.js";

/**
 * A tenant's `models` list as a matcher: exact names and glob patterns (`*` any run of
 * characters, `?` one character; nothing else is special). Compiled once at startup
 * into one regular expression. Asked with the caller's own model name (before it is
 * resolved, so an alias outside the list is refused alike whether it exists or not): no
 * cache, which that name would grow without bound.
 */
export function createModelAccess(patterns: readonly string[]): ModelAccess {
  const exact = new Set(patterns.filter((p) => !/[*?]/.test(p)));
  const globs = patterns.filter((p) => /[*?]/.test(p));
  const glob =
    globs.length === 0
      ? undefined
      : new RegExp(
          `^(?:${globs
            .map((p) =>
              p
                .replace(/[.+^${}()|[\]\\]/g, "\\$&")
                .replace(/\*/g, ".*")
                .replace(/\?/g, "."),
            )
            .join("|")})$`,
          "s",
        );
  return {
    allows: (alias) => exact.has(alias) || (glob?.test(alias) ?? false),
  };
}
