import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { AgentmeshError } from "../shared/contract/errors.js";

/**
 * The one place errors become HTTP responses. Our errors keep their code; the
 * framework's client errors get ours; anything else is logged with the request
 * id and answered with a generic 500, never with internal text.
 */
export function toAgentmeshError(err: FastifyError | Error): AgentmeshError {
  if (err instanceof AgentmeshError) return err;
  const code = "code" in err && typeof err.code === "string" ? err.code : "";
  const status = "statusCode" in err && typeof err.statusCode === "number" ? err.statusCode : 500;
  if (status === 413) return new AgentmeshError("PAYLOAD_TOO_LARGE", undefined, { cause: err });
  if (status === 415) return new AgentmeshError("UNSUPPORTED_MEDIA_TYPE", err.message, { cause: err });
  if (code.startsWith("FST_ERR_CTP_") || err instanceof SyntaxError) {
    return new AgentmeshError("INVALID_JSON", `The request body is not valid JSON: ${err.message}`, { cause: err });
  }
  if (status >= 400 && status < 500) return new AgentmeshError("BAD_REQUEST", err.message, { cause: err });
  return new AgentmeshError("INTERNAL", undefined, { cause: err });
}

const errorCodes = new WeakMap<FastifyRequest, string>();

/** The error code a request was answered with, for its one access-log line. */
export function errorCodeOf(request: FastifyRequest): string | undefined {
  return errorCodes.get(request);
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: FastifyError | Error): FastifyReply {
  const error = toAgentmeshError(err);
  errorCodes.set(request, error.code);
  // Only bugs get a log line of their own, with the cause; refusals and outages show in the access line.
  if (error.code === "INTERNAL") request.log.error({ err: error.cause ?? error, code: error.code }, "request failed");
  if (error.code === "UNAUTHENTICATED") void reply.header("www-authenticate", 'Bearer realm="agentmesh"');
  for (const [name, value] of Object.entries(error.headers)) void reply.header(name, value);
  return reply.code(error.status).type("application/json").send(error.toJSON());
}
