import assert from "node:assert/strict";
import { withQuery } from "../../lib/kube/watch.ts";

Deno.test("withQuery: appends to a path with or without a query, encoding values", () => {
  assert.equal(withQuery("/api/v1/pods", { limit: "1" }), "/api/v1/pods?limit=1");
  assert.equal(
    withQuery("/api/v1/pods?labelSelector=a%3Db", { watch: "1", resourceVersion: "12 3" }),
    "/api/v1/pods?labelSelector=a%3Db&watch=1&resourceVersion=12+3",
  );
});
