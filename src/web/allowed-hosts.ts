// DNS-rebinding defence for `trustedNetworks`: a request let in without credentials because of
// the address it comes from must also name this server in its Host header. A web page on a
// foreign site can point its own name at the camera's LAN address and have the victim's browser
// read the stream, but the Host header still carries the foreign name. Pure policy.
import { hostname } from 'node:os';

import ipaddr from 'ipaddr.js';

/** The host name of a Host header, lower case, without port or IPv6 brackets; '' when absent. */
export function hostOf(header: string | undefined): string {
  if (!header) return '';
  const value = header.trim().toLowerCase();
  if (value.startsWith('[')) return value.slice(1, value.indexOf(']') === -1 ? undefined : value.indexOf(']'));
  const colon = value.lastIndexOf(':');
  // One colon is host:port; more than one is a bare IPv6 address (not valid in Host, read as given).
  return colon !== -1 && value.indexOf(':') === colon ? value.slice(0, colon) : value;
}

/** The names always allowed: `localhost` and this machine's name, plain and with `.local` (mDNS). */
export function ownNames(machine = hostname()): string[] {
  const name = machine.toLowerCase().replace(/\.local$/, '');
  return ['localhost', name, `${name}.local`];
}

/**
 * Whether a request without credentials from a trusted network may be answered: its Host is an
 * IP address, one of this machine's own names, or listed in `allowedHosts`. No Host at all
 * (HTTP/1.0 tools) is not a browser and passes.
 */
export function isAllowedHost(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  const host = hostOf(header);
  if (!host) return true;
  if (ipaddr.isValid(host)) return true;
  return allowed.has(host.replace(/\.$/, ''));
}

/** The set isAllowedHost takes: the configured names and the machine's own. */
export function allowedHostSet(configured: readonly string[], machine = hostname()): Set<string> {
  return new Set([...ownNames(machine), ...configured.map((name) => name.trim().toLowerCase().replace(/\.$/, ''))]);
}
