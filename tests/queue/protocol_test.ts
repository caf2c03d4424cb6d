import assert from "node:assert/strict";
import { idsOf, PROTOCOL, protocolDifferences } from "../../lib/queue/protocol.ts";

Deno.test("idsOf: the ids of a comma-separated payload", () => {
  assert.deepEqual(idsOf("3,10,7"), [3, 10, 7]);
  assert.deepEqual(idsOf("42"), [42]);
});

Deno.test("protocolDifferences: none when the database's constants are the worker's", () => {
  assert.deepEqual(protocolDifferences(JSON.parse(JSON.stringify(PROTOCOL))), []);
});

Deno.test("protocolDifferences: names each constant that differs, missing or extra", () => {
  const database = JSON.parse(JSON.stringify(PROTOCOL));
  database.methods.push("TRACE");
  delete database.max_duration_seconds;
  database.priorities = ["high"];
  assert.deepEqual(protocolDifferences(database), [
    "max_duration_seconds: database undefined, worker 3600",
    'methods: database ["GET","HEAD","POST","PUT","PATCH","DELETE","OPTIONS","TRACE"], ' +
    'worker ["GET","HEAD","POST","PUT","PATCH","DELETE","OPTIONS"]',
    'priorities: database ["high"], worker undefined',
  ]);
});
