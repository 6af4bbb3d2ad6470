import { z } from "zod";
import type { StreamPath, StreamSelector } from "../../shared/contract/subjects.js";
import type { Right } from "../../shared/log/writer.js";

/**
 * What a bearer token grants, from its `streams` claim:
 * `{"streams":[{"path":"/agents/bot-1/**","rights":["read","append"]}]}`.
 * A path pattern is a stream path whose segments may be `*` (any one segment),
 * with an optional final `/**` (that path and everything below it); `/**` alone
 * is every stream.
 */

export const RightSchema = z.enum(["read", "append", "admin"]) satisfies z.ZodType<Right>;
export type { Right };

export const GrantSchema = z.object({
  path: z.string().regex(/^\/(\*\*|[A-Za-z0-9._~*-]+(\/[A-Za-z0-9._~*-]+)*(\/\*\*)?)$/, "a stream path pattern like /agents/*/inbox or /agents/**"),
  rights: z.array(RightSchema).min(1),
});

export const StreamsClaimSchema = z.array(GrantSchema);
export type Grant = z.infer<typeof GrantSchema>;

function splitPattern(pattern: string): { segments: string[]; subtree: boolean } {
  if (pattern === "/**") return { segments: [], subtree: true };
  const subtree = pattern.endsWith("/**");
  const body = subtree ? pattern.slice(0, -3) : pattern;
  return { segments: body.slice(1).split("/"), subtree };
}

function segmentsMatch(pattern: readonly string[], path: readonly string[]): boolean {
  return pattern.every((segment, i) => segment === "*" || segment === path[i]);
}

/** Does the pattern cover this one stream? */
export function patternMatchesPath(pattern: string, path: StreamPath): boolean {
  const { segments, subtree } = splitPattern(pattern);
  const parts = path.slice(1).split("/");
  if (subtree ? parts.length < segments.length : parts.length !== segments.length) return false;
  return segmentsMatch(segments, parts);
}

/** Does the pattern cover every stream a selector can name (the stream, or the whole subtree)? */
export function patternCovers(pattern: string, selector: StreamSelector): boolean {
  if (selector.kind === "stream") return patternMatchesPath(pattern, selector.path);
  const { segments, subtree } = splitPattern(pattern);
  if (!subtree) return false;
  const prefix = selector.prefix === null ? [] : selector.prefix.slice(1).split("/");
  return prefix.length >= segments.length && segmentsMatch(segments, prefix);
}

export function allows(grants: readonly Grant[], right: Right, selector: StreamSelector): boolean {
  return grants.some((grant) => grant.rights.includes(right) && patternCovers(grant.path, selector));
}
