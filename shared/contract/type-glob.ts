/** Glob over `/`-separated event types: `*` is one segment or part of one, `**` anything. */
export function typeMatcher(patterns: readonly string[]): (type: string) => boolean {
  const regexes = patterns.map((pattern) => {
    const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`^${escaped.replaceAll("**", "\u0000").replaceAll("*", "[^/]*").replaceAll("\u0000", ".*")}$`);
  });
  return (type) => regexes.some((regex) => regex.test(type));
}
