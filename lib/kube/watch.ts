/**
 * One bounded watch: list for the current resourceVersion when none is given, then watch from it
 * for `timeoutSeconds`, collecting events as they arrive and ending with a BOOKMARK that carries
 * the last resourceVersion seen, from which the next watch resumes without gaps or repeats.
 *
 * Events stay the text the server sent (PostgreSQL parses them once, as jsonb); only bookmarks,
 * errors and the last event are parsed here. Knows nothing about PostgreSQL.
 *
 * @module
 */
import type { KubeFetch, KubeTarget } from "./client.ts";
import { readResponseText } from "./body.ts";
import { ByteBudget, ResponseLimitExceeded } from "./limits.ts";
import { lines } from "./ndjson.ts";

/** What to watch. */
export interface WatchRequest {
  /** Collection path, optionally with a query (label and field selectors), e.g. `/api/v1/pods`. */
  path: string;
  /** Start after this version; when absent, the current one is listed first. */
  resourceVersion?: string;
  timeoutSeconds: number;
  /** Aborts the watch: it fails. */
  signal?: AbortSignal;
  /** Ends the watch early but normally, with the events seen so far and the resume bookmark. */
  finish?: AbortSignal;
  /** Bounds the list that finds the current version, when there is one. */
  listTimeoutMs?: number;
  /**
   * The most bytes of events (and of the line being read) kept at once, and of a list or error
   * body; more fail the watch with `ResponseLimitExceeded`. Bookmarks are not kept.
   */
  maxBytes: number;
  /** The most events kept; one more fails the watch with `ResponseLimitExceeded`. */
  maxEvents: number;
}

/** What a watch saw. */
export interface WatchResult {
  /** HTTP status; for an ERROR event in the stream, the code of its Status (410: relist). */
  status: number;
  /** Events as JSON text, in order; the last one is the resume BOOKMARK unless the watch failed. */
  events: string[];
  /** The version to resume from (absent if the watch failed before it had one). */
  resourceVersion?: string;
}

/** Appends query parameters to a path that may already have a query. */
export function withQuery(path: string, params: Record<string, string>): string {
  const query = new URLSearchParams(params).toString();
  return path + (path.includes("?") ? "&" : "?") + query;
}

// deno-lint-ignore no-explicit-any -- parsed Kubernetes objects are checked field by field
function resourceVersionOf(event: any): string | undefined {
  const version = event?.object?.metadata?.resourceVersion;
  return typeof version === "string" && version !== "" ? version : undefined;
}

/**
 * Runs one watch as described in the module doc, making its calls with `fetch` (the watch itself
 * as a `watch`, so that it gets a connection apart from calls). Transport failures throw
 * (KubeTransportError), and so does a watch over its limits (`ResponseLimitExceeded`): its
 * stream is cancelled at once.
 */
export async function watchOnce(
  fetch: KubeFetch,
  target: KubeTarget,
  request: WatchRequest,
): Promise<WatchResult> {
  let resourceVersion = request.resourceVersion;
  let kind: string | undefined;
  let apiVersion: string | undefined;
  if (!resourceVersion) {
    // resourceVersion "0" would allow a cached, older answer; an empty one reads the latest.
    const listSignal = request.listTimeoutMs === undefined ? request.signal : AbortSignal.any(
      [request.signal, AbortSignal.timeout(request.listTimeoutMs)].filter((s) => s !== undefined),
    );
    const list = await fetch(target, {
      method: "GET",
      path: withQuery(request.path, { limit: "1" }),
      signal: listSignal,
    });
    const body = await readResponseText(list, { maxBytes: request.maxBytes, signal: listSignal });
    if (!list.ok) return { status: list.status, events: body ? [body] : [] };
    const parsed = JSON.parse(body);
    resourceVersion = parsed?.metadata?.resourceVersion;
    kind = typeof parsed?.kind === "string" ? parsed.kind.replace(/List$/, "") : undefined;
    apiVersion = parsed?.apiVersion;
  }

  // The server ends the watch after timeoutSeconds; our own timer is a backstop a little later.
  const backstop = AbortSignal.timeout(request.timeoutSeconds * 1000 + 5000);
  const ends = [backstop, request.signal, request.finish].filter((s) => s !== undefined);
  const signal = AbortSignal.any(ends);
  const endedNormally = () =>
    (backstop.aborted || request.finish?.aborted === true) && !request.signal?.aborted;
  const params: Record<string, string> = {
    watch: "1",
    allowWatchBookmarks: "true",
    timeoutSeconds: String(request.timeoutSeconds),
  };
  if (resourceVersion) params.resourceVersion = resourceVersion;
  let response: Response;
  try {
    response = await fetch(target, {
      method: "GET",
      path: withQuery(request.path, params),
      signal,
      purpose: "watch",
    });
  } catch (error) {
    if (!endedNormally()) throw error;
    return {
      status: 200,
      events: [resumeBookmark(resourceVersion, kind, apiVersion)],
      resourceVersion,
    };
  }
  if (!response.ok || !response.body) {
    const body = await readResponseText(response, { maxBytes: request.maxBytes, signal });
    return { status: response.status, events: body ? [body] : [], resourceVersion };
  }

  const events: string[] = [];
  // The newest version is either the last bookmark's or the last event's, whichever came later.
  let bookmarkVersion: string | undefined;
  let bookmarkAfterEvents = -1;
  // Events kept and the line being read share one budget; a bookmark read is given back.
  const budget = new ByteBudget(request.maxBytes);
  try {
    for await (const { text: line, bytes } of lines(response.body, { budget, signal })) {
      if (line.startsWith('{"type":"BOOKMARK"')) {
        bookmarkVersion = resourceVersionOf(JSON.parse(line)) ?? bookmarkVersion;
        bookmarkAfterEvents = events.length;
        budget.refund(bytes);
        continue;
      }
      if (events.length >= request.maxEvents) {
        throw new ResponseLimitExceeded(request.maxEvents, "events");
      }
      if (line.startsWith('{"type":"ERROR"')) {
        const status = JSON.parse(line)?.object?.code;
        events.push(line);
        return { status: typeof status === "number" ? status : 500, events, resourceVersion };
      }
      events.push(line);
    }
  } catch (error) {
    // Our backstop, or a finish, ending the watch is a normal end; an abort or a limit is not.
    if (error instanceof ResponseLimitExceeded || !endedNormally()) throw error;
  }

  if (bookmarkVersion && bookmarkAfterEvents === events.length) {
    resourceVersion = bookmarkVersion;
  } else if (events.length > 0) {
    const last = JSON.parse(events[events.length - 1]);
    resourceVersion = resourceVersionOf(last) ?? resourceVersion;
    kind ??= last?.object?.kind;
    apiVersion ??= last?.object?.apiVersion;
  }
  events.push(resumeBookmark(resourceVersion, kind, apiVersion));
  return { status: response.status, events, resourceVersion };
}

/** The final BOOKMARK event: where the next watch resumes. */
function resumeBookmark(resourceVersion?: string, kind?: string, apiVersion?: string): string {
  return JSON.stringify({
    type: "BOOKMARK",
    object: {
      ...(kind ? { kind } : {}),
      ...(apiVersion ? { apiVersion } : {}),
      metadata: { resourceVersion },
    },
  });
}
