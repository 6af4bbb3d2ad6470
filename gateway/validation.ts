import type { z } from "zod";
import { AgentmeshError, type ErrorCode } from "../shared/contract/errors.js";

/** Validate with a zod schema; failures become `code` with a message naming the field that is wrong. */
export function parseOr<S extends z.ZodType>(schema: S, value: unknown, code: ErrorCode, root: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  // An unknown field is reported where the object is; the field to name is the unknown key itself.
  const path = issue === undefined ? [] : issue.code === "unrecognized_keys" && issue.keys[0] !== undefined ? [...issue.path, issue.keys[0]] : issue.path;
  const where = issue === undefined ? root : formatPath(root, path);
  const message = issue === undefined ? "invalid" : describe(issue);
  throw new AgentmeshError(code, `${where}: ${message}`, { details: { field: where } });
}

function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const key of path) out += typeof key === "number" ? `[${key}]` : out === "" ? String(key) : `.${String(key)}`;
  return out;
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
  return issue.message;
}
