import assert from "node:assert/strict";
import { addedObjectBytes } from "../../lib/kube/watch_event.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("addedObjectBytes: the object of an event as kube-apiserver writes it is a view, not a copy", () => {
  const event = encoder.encode('{"type":"ADDED","object":{"metadata":{"name":"é\\"}"}}}');
  const object = addedObjectBytes(event);
  assert.equal(decoder.decode(object), '{"metadata":{"name":"é\\"}"}}');
  assert.equal(object.buffer, event.buffer, "a view of the event's bytes");
});

Deno.test("addedObjectBytes: any other form is parsed, and its object encoded again", () => {
  const spaced = encoder.encode(
    '{ "object": {"a": [1, 2.50], "big": 12345678901234567890}, "type": "ADDED" }',
  );
  assert.equal(
    decoder.decode(addedObjectBytes(spaced)),
    '{"a":[1,2.50],"big":12345678901234567890}',
    "numbers as the server wrote them",
  );
});

Deno.test("addedObjectBytes: an event of another type, or without an object, is refused", () => {
  for (
    const event of [
      '{"type":"MODIFIED","object":{}}',
      '{"type":"ADDED"}',
      '{"type":"ADDED","object":null}',
    ]
  ) {
    assert.throws(
      () => addedObjectBytes(encoder.encode(event)),
      /not an ADDED watch event with an object/,
    );
  }
  assert.throws(() => addedObjectBytes(encoder.encode('{"type":"ADDED","object":')), SyntaxError);
});
