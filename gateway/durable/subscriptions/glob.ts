/**
 * Subscription patterns over protocol paths (`events/a`), as the protocol's reference server matches them
 * (`glob.ts`): `*` is exactly one segment, `**` zero or more. The reserved `__ds` tree never matches.
 */

export const RESERVED_ROOT = "__ds";

function matchSegments(pattern: readonly string[], path: readonly string[], p: number, s: number): boolean {
  if (p === pattern.length) return s === path.length;
  const part = pattern[p];
  if (part === "**") {
    for (let skip = s; skip <= path.length; skip++) if (matchSegments(pattern, path, p + 1, skip)) return true;
    return false;
  }
  if (s === path.length) return false;
  return (part === "*" || part === path[s]) && matchSegments(pattern, path, p + 1, s + 1);
}

export function globMatches(pattern: string, path: string): boolean {
  const segments = path.split("/");
  if (segments[0] === RESERVED_ROOT) return false;
  return matchSegments(pattern.split("/"), segments, 0, 0);
}

/** The literal segments before the first wildcard: the subtree whose admin right configuring the pattern needs. */
export function globPrefix(pattern: string): string | null {
  const literal: string[] = [];
  for (const segment of pattern.split("/")) {
    if (segment === "*" || segment === "**") break;
    literal.push(segment);
  }
  return literal.length === 0 ? null : literal.join("/");
}
