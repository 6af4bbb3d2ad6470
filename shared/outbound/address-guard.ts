import { lookup as lookupAll } from "node:dns/promises";
import { lookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from "node:dns";
import ipaddr from "ipaddr.js";
import { Agent } from "undici";

/** IPv6 forms that carry an IPv4 address a host may route to as such (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`). */
function embeddedIPv4(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (address.kind() !== "ipv6") return address;
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  const parts = v6.parts;
  // ::/96 (IPv4-compatible, deprecated by RFC 4291 but still routed as IPv4 by some stacks), except :: and ::1.
  if (parts.slice(0, 6).every((p) => p === 0) && (parts[6] !== 0 || (parts[7] ?? 0) > 1)) {
    return ipaddr.fromByteArray(v6.toByteArray().slice(12));
  }
  return address;
}

/** The address's range; an IPv6 address outside global unicast (2000::/3) is never taken as public. */
function rangeOf(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  const range = address.range();
  if (address.kind() === "ipv6" && range === "unicast" && !address.match(ipaddr.parseCIDR("2000::/3"))) return "reserved";
  return range;
}

/**
 * Refuses outbound URLs (webhooks, MCP servers) that reach the mesh's own network (SSRF): loopback,
 * private, link-local and the like, unless the operator allows a range by its
 * ipaddr.js name (`loopback`, `private`, `linkLocal`, `uniqueLocal`, ...).
 * Checked at connect time on the resolved address, so DNS cannot swap it after the check.
 */
export class AddressGuard {
  /** `setting` names the configuration that allows a range, for the refusal's message. */
  constructor(
    private readonly allowedRanges: ReadonlySet<string>,
    private readonly setting = "WEBHOOK_ALLOWED_NETWORKS",
  ) {}

  /** Why an address is refused, or null when it may be reached. */
  refusal(address: string): string | null {
    if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
    const parsed = embeddedIPv4(ipaddr.parse(address));
    const range = rangeOf(parsed);
    if (range === "unicast" || this.allowedRanges.has(range)) return null;
    return `${address} is a ${range} address (allow it with ${this.setting}=${range})`;
  }

  /** A URL whose host is an IP literal is checked here: connect-time lookup never runs for it. */
  urlRefusal(url: string): string | null {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    return ipaddr.isValid(host) ? this.refusal(host) : null;
  }

  /** Why a URL may not be used, resolving its host now (a refusal to show early; connect time checks again); null when it may. */
  async resolvedUrlRefusal(url: string): Promise<string | null> {
    const literal = this.urlRefusal(url);
    if (literal !== null) return literal;
    const host = new URL(url).hostname;
    const addresses = await lookupAll(host, { all: true }).catch(() => []);
    for (const { address } of addresses) {
      const refusal = this.refusal(address);
      if (refusal !== null) return `${host} resolves to ${refusal}`;
    }
    return null;
  }

  /**
   * An undici dispatcher whose every connection checks the resolved address (the connect-time check); `timeoutMs`
   * bounds connecting, headers and body when given. Every outbound client (webhooks, wakes, MCP servers) uses one.
   */
  dispatcher(timeoutMs?: number): Agent {
    return new Agent(timeoutMs === undefined ? { connect: { lookup: this.lookup } } : { connect: { lookup: this.lookup, timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  }

  /** A `lookup` for net/tls.connect that fails on refused addresses. */
  readonly lookup = (hostname: string, options: LookupOneOptions | LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err !== null) {
        callback(err, []);
        return;
      }
      for (const { address } of addresses) {
        const refusal = this.refusal(address);
        if (refusal !== null) {
          callback(Object.assign(new Error(`refused: ${hostname} resolves to ${refusal}`), { code: "EREFUSEDADDRESS" }), []);
          return;
        }
      }
      if ("all" in options && options.all === true) callback(null, addresses);
      else callback(null, addresses[0]?.address ?? "", addresses[0]?.family);
    });
  };
}
