/**
 * `deno task status`: the queue at a glance, as plain-text tables.
 *
 * @module
 */
import type { Sql } from "./db.ts";
import { REQUEST_STATES } from "./queue/protocol.ts";
import { RELEASE } from "./version.ts";
import {
  asyncDepth,
  clusterList,
  queueDepth,
  recentFailures,
  workerList,
} from "./queue/inspect.ts";
import { liveTableList } from "./live/registry.ts";

/** Left-aligned columns separated by two spaces, with a header row. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function ago(date: Date | null, now: Date): string {
  if (!date) return "-";
  const seconds = Math.max(0, (now.getTime() - date.getTime()) / 1000);
  return seconds < 120 ? `${seconds.toFixed(1)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/**
 * The status report: the installed release, queue depth by state (api() and watch() requests, and
 * async ones), workers, named clusters, live tables, the most recent failures.
 */
export async function statusReport(sql: Sql, now = new Date()): Promise<string> {
  const [depth, asyncRequests, workers, clusters, live, failures, [{ version }]] = await Promise
    .all([
      queueDepth(sql),
      asyncDepth(sql),
      workerList(sql),
      clusterList(sql),
      liveTableList(sql),
      recentFailures(sql, 10),
      sql`select omni_kube.version() as version`,
    ]);
  return [
    `Release: ${version} installed (this command: ${RELEASE})`,
    "",
    "Queue",
    table(
      ["state", "requests", "async"],
      REQUEST_STATES.map((s) => [s, String(depth[s] ?? 0), String(asyncRequests[s] ?? 0)]),
    ),
    "",
    "Workers",
    workers.length === 0 ? "(none registered)" : table(
      ["id", "host", "pid", "alive", "started", "last heartbeat"],
      workers.map((w) => [
        w.id,
        w.host,
        String(w.pid),
        w.alive ? "yes" : "no",
        ago(w.startedAt, now),
        ago(w.lastSeen, now),
      ]),
    ),
    "",
    "Named clusters",
    clusters.length === 0 ? "(none)" : table(
      ["name", "server", "auth", "version", "reachable", "workers", "last error"],
      clusters.map((c) => [
        c.name,
        c.server ?? "-",
        c.auth ?? "-",
        c.serverVersion ?? "-",
        c.reachable === null ? "-" : c.reachable ? "yes" : "no",
        String(c.workers),
        clip(c.lastError ?? "", 60),
      ]),
    ),
    "",
    "Live tables",
    live.length === 0 ? "(none)" : table(
      ["table", "resource", "state", "objects", "last event", "relists", "last error"],
      live.map((l) => [
        l.table,
        l.resource,
        l.state,
        String(l.objects),
        ago(l.lastEventAt, now),
        String(l.relists),
        clip(l.lastError ?? "", 60),
      ]),
    ),
    "",
    "Recent failures",
    failures.length === 0 ? "(none)" : table(
      ["id", "state", "status", "method", "path", "error", "finished"],
      failures.map((f) => [
        String(f.id),
        f.state,
        f.status === null ? "-" : String(f.status),
        f.method,
        clip(f.path, 60),
        clip(f.error ?? "", 80),
        ago(f.finishedAt, now),
      ]),
    ),
  ].join("\n");
}
