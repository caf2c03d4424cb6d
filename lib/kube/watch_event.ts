/**
 * The object of a watch event, cut from the event's bytes without decoding them.
 *
 * kube-apiserver encodes a watch event as `{"type":"ADDED","object":{...}}`, the fields in that
 * order (Go's `encoding/json` writes a struct's fields in declaration order). For a consumer that
 * passes objects on as bytes (a live table's first list, copied into PostgreSQL), the object is
 * then the bytes between that prefix and the final brace: a view, not a copy. Any other form is
 * parsed and the object encoded again, numbers as their source text (so that no integer beyond
 * 2^53 is rounded).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const OPENING_BRACE = 0x7b;
const CLOSING_BRACE = 0x7d;

/** How kube-apiserver begins an ADDED event, up to its object. */
const ADDED_PREFIX = encoder.encode('{"type":"ADDED","object":');

/** The bytes of `event`'s object; `event` is one ADDED watch event as JSON (UTF-8). */
export function addedObjectBytes(event: Uint8Array): Uint8Array {
  if (
    event.length > ADDED_PREFIX.length + 1 && event[ADDED_PREFIX.length] === OPENING_BRACE &&
    event[event.length - 1] === CLOSING_BRACE && startsWith(event, ADDED_PREFIX)
  ) {
    return event.subarray(ADDED_PREFIX.length, event.length - 1);
  }
  const parsed = parseWithRawNumbers(decoder.decode(event)) as { type?: unknown; object?: unknown };
  if (parsed?.type !== "ADDED" || typeof parsed.object !== "object" || parsed.object === null) {
    throw new Error("not an ADDED watch event with an object");
  }
  return encoder.encode(JSON.stringify(parsed.object));
}

/**
 * `JSON.parse` whose numbers stay their source text when stringified again (`JSON.rawJSON` and the
 * reviver's `context.source`: V8 has them; TypeScript's lib does not declare them yet).
 */
function parseWithRawNumbers(text: string): unknown {
  const parse = JSON.parse as (
    text: string,
    reviver: (key: string, value: unknown, context: { source?: string }) => unknown,
  ) => unknown;
  const { rawJSON } = JSON as unknown as { rawJSON(text: string): unknown };
  return parse(
    text,
    (_key, value, context) =>
      typeof value === "number" && context.source !== undefined ? rawJSON(context.source) : value,
  );
}

/** Whether `data` begins with the bytes of `prefix`. */
export function startsWith(data: Uint8Array, prefix: Uint8Array): boolean {
  if (data.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[i] !== prefix[i]) return false;
  return true;
}
