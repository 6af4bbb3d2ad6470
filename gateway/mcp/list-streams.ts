import type { StreamListBody } from "../../shared/contract/http-bodies.js";
import type { StreamPath } from "../../shared/contract/subjects.js";
import type { StreamIndexes } from "../../shared/log/stream-indexes.js";
import type { Writer } from "../../shared/log/writer.js";
import type { Nats } from "../../shared/nats/connection.js";
import { listStreams } from "../reads/stream-list.js";

/**
 * `list-streams`: the streams at and under the agent's path, as `GET /streams?prefix=<path>` lists them (the same
 * gateway/reads/stream-list.ts, with the same rule: only what the token may read, filtered before paging, so neither
 * a page nor its cursor names a stream the token may not read).
 */
export function listStreamsUnder(deps: { nats: Nats; indexes: StreamIndexes }, path: StreamPath, caller: Writer, page: { limit: number; cursor?: StreamPath | undefined }): Promise<StreamListBody> {
  return listStreams(deps.nats, {
    prefix: path,
    limit: page.limit,
    visible: (stream) => caller.may("read", stream),
    paused: (stream) => deps.indexes.pauseStatus(stream)?.paused === true,
    ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
  });
}
