import { BlockList, isIPv4 } from "node:net";
import { parseCidr } from "../config/cidr.js";

/** Addresses a credential may be used from. */
export interface NetworkAllowList {
  allows(address: string | undefined): boolean;
}

/**
 * CIDR ranges as node's BlockList (its own matcher, IPv4 and IPv6). An IPv4 peer on a
 * dual-stack socket arrives as `::ffff:10.1.2.3`: it is matched as the IPv4 address it is.
 * An unknown peer address (a closed socket) is never allowed.
 */
export function createNetworkAllowList(ranges: readonly string[]): NetworkAllowList {
  const list = new BlockList();
  for (const range of ranges) {
    const cidr = parseCidr(range);
    if (cidr === undefined) throw new Error(`not an address or CIDR range: ${range}`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return {
    allows(address) {
      if (address === undefined) return false;
      const mapped = address.startsWith("::ffff:") ? address.slice(7) : address;
      return isIPv4(mapped) ? list.check(mapped, "ipv4") : list.check(mapped, "ipv6");
    },
  };
}
