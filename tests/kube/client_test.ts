import assert from "node:assert/strict";
import { contentTypeFor, normalizeServer } from "../../lib/kube/client.ts";

Deno.test("contentTypeFor: PATCH is a merge patch for objects and a JSON patch for arrays", () => {
  assert.equal(contentTypeFor("PATCH", '{"data":{"a":"1"}}'), "application/merge-patch+json");
  assert.equal(
    contentTypeFor("PATCH", ' [{"op":"remove","path":"/data/a"}]'),
    "application/json-patch+json",
  );
  assert.equal(contentTypeFor("POST", "{}"), "application/json");
  assert.equal(contentTypeFor("GET", undefined), undefined);
});

Deno.test("normalizeServer: accepts https://host[:port] and drops a trailing slash", () => {
  assert.equal(normalizeServer("https://127.0.0.1:6443/"), "https://127.0.0.1:6443");
  assert.equal(normalizeServer("https://kubernetes.default.svc"), "https://kubernetes.default.svc");
});

Deno.test("normalizeServer: rejects what would leak credentials or misroute calls", () => {
  assert.throws(() => normalizeServer("http://127.0.0.1:8080"), /must use https/);
  assert.throws(() => normalizeServer("kubernetes.default.svc"), /is not a URL/);
  assert.throws(() => normalizeServer("https://host/prefix"), /only https:\/\/host\[:port\]/);
  assert.throws(() => normalizeServer("https://user:pw@host"), /only https:\/\/host\[:port\]/);
});
