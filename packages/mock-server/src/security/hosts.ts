/**
 * Which `Host` names the mock answers to on its own surfaces (admin API, UI, metrics, REST). A DNS
 * rebinding attack reaches the server under a name the attacker controls, so a name not configured
 * here is refused. IP literals are always accepted: a browser sends one only when the page's own URL
 * names that address, which no rebinding can arrange.
 */
import { isIP } from 'node:net';

export interface HostAllowListOptions {
  /**
   * Extra names: the bound host name, `--public-url`'s host, every `--allowed-host`. A name starting
   * with a dot (`.corp.example`) also accepts every subdomain; a port, if given, is ignored.
   */
  readonly names?: readonly string[];
}

export interface HostAllowList {
  /** True for a `Host` header value (`name`, `name:port`, `[v6]:port`) the server answers to. */
  allows(host: string): boolean;
  /** The configured names, for messages. */
  readonly names: readonly string[];
}

/** The host name of a `Host` header value, lower-cased, brackets of an IPv6 literal removed. */
export function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(1, end);
  }
  // One colon separates the port; more than one is a bare IPv6 literal.
  const colon = h.indexOf(':');
  return colon >= 0 && colon === h.lastIndexOf(':') ? h.slice(0, colon) : h;
}

const LOOPBACK_NAMES = ['localhost'];
/** A name (optionally with a leading dot or a port) or an IP literal; no scheme, path or wildcard. */
const HOST_NAME = /^(?:\.?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|\[[0-9a-f:.]+\]|[0-9a-f:.]+)(?::\d{1,5})?$/;

/** `localhost`, `127.0.0.0/8`, `::1`. */
export function isLoopbackHost(host: string): boolean {
  const name = hostnameOf(host);
  if (LOOPBACK_NAMES.includes(name)) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  return name === '::1' || name === '0:0:0:0:0:0:0:1';
}

export function createHostAllowList(options: HostAllowListOptions = {}): HostAllowList {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const raw of options.names ?? []) {
    const value = raw.trim().toLowerCase();
    if (value === '') continue;
    if (!HOST_NAME.test(value)) {
      throw new Error(
        `invalid host name "${raw}" (e.g. cache.example.com, .example.com, 10.0.0.5; not a URL)`,
      );
    }
    if (value.startsWith('.')) suffixes.push(value);
    else exact.add(hostnameOf(value));
  }
  return {
    names: [...LOOPBACK_NAMES, ...exact, ...suffixes.map((s) => `*${s}`)],
    allows(host) {
      const name = hostnameOf(host);
      if (name === '') return false;
      if (isIP(name) !== 0 || isLoopbackHost(name) || exact.has(name)) return true;
      return suffixes.some((s) => name.endsWith(s) || name === s.slice(1));
    },
  };
}
