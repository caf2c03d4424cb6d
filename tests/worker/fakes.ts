/**
 * Small fakes shared by the worker parts' tests.
 *
 * @module
 */
import type { Logger } from "../../lib/observe.ts";
import type { ClaimedRequest } from "../../lib/queue/claim.ts";

/** A logger that keeps the messages of its lines. */
export function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const write = (message: string) => lines.push(message);
  return { lines, debug: write, info: write, warn: write, error: write };
}

/**
 * A claimed GET of `/api/v1/namespaces` (request 1 of alice, with its lock), changed by `fields`.
 */
export function claimedRequest(fields: Partial<ClaimedRequest> = {}): ClaimedRequest {
  return {
    id: 1,
    kind: "api",
    requestedBy: "alice",
    method: "GET",
    path: "/api/v1/namespaces",
    body: null,
    stream: false,
    patchType: null,
    server: "https://kube.test",
    timeoutMs: 5000,
    useWorkerDefault: false,
    cacert: null,
    clientCertificate: null,
    clientPrivateKey: null,
    token: null,
    locked: true,
    cluster: null,
    ...fields,
  };
}
