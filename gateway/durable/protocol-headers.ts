/** Header names of the Durable Streams protocol (compared case-insensitively; Node lower-cases incoming ones). */
export const DsHeaders = {
  nextOffset: "stream-next-offset",
  upToDate: "stream-up-to-date",
  cursor: "stream-cursor",
  closed: "stream-closed",
  seq: "stream-seq",
  ttl: "stream-ttl",
  expiresAt: "stream-expires-at",
  forkedFrom: "stream-forked-from",
  forkOffset: "stream-fork-offset",
  forkSubOffset: "stream-fork-sub-offset",
  sseDataEncoding: "stream-sse-data-encoding",
  producerId: "producer-id",
  producerEpoch: "producer-epoch",
  producerSeq: "producer-seq",
  producerExpectedSeq: "producer-expected-seq",
  producerReceivedSeq: "producer-received-seq",
} as const;

/** Browsers may call the protocol from any origin; these let them read what it returns. */
export const CorsHeaders = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, HEAD, OPTIONS",
  "access-control-allow-headers": [
    "content-type",
    "authorization",
    "if-none-match",
    "x-request-id",
    DsHeaders.seq,
    DsHeaders.ttl,
    DsHeaders.expiresAt,
    DsHeaders.closed,
    DsHeaders.producerId,
    DsHeaders.producerEpoch,
    DsHeaders.producerSeq,
    DsHeaders.forkedFrom,
    DsHeaders.forkOffset,
    DsHeaders.forkSubOffset,
  ].join(", "),
  "access-control-expose-headers": [
    DsHeaders.nextOffset,
    DsHeaders.cursor,
    DsHeaders.upToDate,
    DsHeaders.closed,
    DsHeaders.sseDataEncoding,
    DsHeaders.producerEpoch,
    DsHeaders.producerSeq,
    DsHeaders.producerExpectedSeq,
    DsHeaders.producerReceivedSeq,
    "etag",
    "content-type",
    "location",
  ].join(", "),
  "access-control-max-age": "86400",
} as const;

/** On every protocol response, errors included. */
export const SecurityHeaders = {
  "x-content-type-options": "nosniff",
  // A stream may hold any bytes under any content type, text/html included: a browser that opens a read runs
  // nothing of it, with no access to the gateway's origin.
  "content-security-policy": "sandbox; default-src 'none'",
  "cross-origin-resource-policy": "cross-origin",
} as const;
