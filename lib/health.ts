/**
 * The worker's HTTP endpoints for orchestrators and scrapers: `/healthz` (the process answers),
 * `/readyz` (database reachable, migrations applied) and `/metrics` (Prometheus text format).
 *
 * @module
 */

/** What the endpoints ask the worker. */
export interface HealthSource {
  /** Null when ready, else why not. */
  notReadyReason(): Promise<string | null>;
  metrics(): Promise<string>;
}

/** Serves the endpoints on `hostname:port` until the returned server is shut down. */
export function serveHealth(
  source: HealthSource,
  options: { hostname: string; port: number; onListen?: (addr: Deno.NetAddr) => void },
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: options.onListen ?? (() => {}),
  }, async (request) => {
    const { pathname } = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    switch (pathname) {
      case "/healthz":
        return new Response("ok\n");
      case "/readyz": {
        const reason = await source.notReadyReason().catch((error) => String(error));
        return reason === null
          ? new Response("ready\n")
          : new Response(`not ready: ${reason}\n`, { status: 503 });
      }
      case "/metrics":
        return new Response(await source.metrics(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      default:
        return new Response("not found: try /healthz, /readyz or /metrics\n", { status: 404 });
    }
  });
}
