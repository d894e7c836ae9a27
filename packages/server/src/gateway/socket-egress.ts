import type { Agent } from "node:http";
import { HttpsProxyAgent } from "https-proxy-agent";
import type { EgressProxy } from "./config.js";

const DEFAULT_PORTS: Record<string, number> = { "ws:": 80, "wss:": 443 };

/**
 * The agent a WebSocket upstream connection goes through: a CONNECT tunnel through the egress proxy
 * (HTTPS_PROXY for wss://, HTTP_PROXY for ws:// and where no HTTPS one is set), unless NO_PROXY names its
 * host; undefined to connect directly. The HTTP calls' agent (undici's) reads the same settings the same way.
 */
export class SocketEgress {
  readonly #agents = new Map<string, Agent>();
  readonly #noProxy: { host: string; port: number }[];

  constructor(private readonly proxy: EgressProxy | null) {
    this.#noProxy = (proxy?.noProxy ?? "")
      .split(/[,\s]/)
      .filter(Boolean)
      .map((entry) => {
        const m = /^(.+):(\d+)$/.exec(entry);
        return { host: (m ? m[1]! : entry).toLowerCase(), port: m ? Number(m[2]) : 0 };
      });
  }

  agentFor(url: URL): Agent | undefined {
    const p = this.proxy;
    if (!p) return undefined;
    const via = url.protocol === "wss:" ? (p.httpsProxy ?? p.httpProxy) : p.httpProxy;
    if (!via || this.#bypasses(url)) return undefined;
    let agent = this.#agents.get(via);
    if (!agent) {
      agent = new HttpsProxyAgent(via);
      this.#agents.set(via, agent);
    }
    return agent;
  }

  /** NO_PROXY: `*` for every host, else a host (and port) or a domain suffix (`.example.com`, `*.example.com`). */
  #bypasses(url: URL): boolean {
    const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port) || DEFAULT_PORTS[url.protocol] || 0;
    return this.#noProxy.some((e) => {
      if (e.host === "*") return true;
      if (e.port && e.port !== port) return false;
      return /^[.*]/.test(e.host) ? host.endsWith(e.host.replace(/^\*/, "")) : host === e.host;
    });
  }
}
