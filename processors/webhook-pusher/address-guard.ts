import { lookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from "node:dns";
import ipaddr from "ipaddr.js";

/**
 * Refuses webhook URLs that reach the pusher's own network (SSRF): loopback,
 * private, link-local and the like, unless the operator allows a range by its
 * ipaddr.js name (`loopback`, `private`, `linkLocal`, `uniqueLocal`, ...).
 * Checked at connect time on the resolved address, so DNS cannot swap it after the check.
 */
export class AddressGuard {
  constructor(private readonly allowedRanges: ReadonlySet<string>) {}

  /** Why an address is refused, or null when it may be reached. */
  refusal(address: string): string | null {
    if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
    let parsed = ipaddr.parse(address);
    if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
    const range = parsed.range();
    if (range === "unicast" || this.allowedRanges.has(range)) return null;
    return `${address} is a ${range} address (allow it with WEBHOOK_ALLOWED_NETWORKS=${range})`;
  }

  /** A URL whose host is an IP literal is checked here: connect-time lookup never runs for it. */
  urlRefusal(url: string): string | null {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    return ipaddr.isValid(host) ? this.refusal(host) : null;
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
          callback(Object.assign(new Error(`refused: ${hostname} resolves to ${refusal}`), { code: "EWEBHOOKADDRESS" }), []);
          return;
        }
      }
      if ("all" in options && options.all === true) callback(null, addresses);
      else callback(null, addresses[0]?.address ?? "", addresses[0]?.family);
    });
  };
}
