import assert from "node:assert/strict";
import { splitLines } from "../../lib/kube/ndjson.ts";

/** A byte stream that delivers `chunks` one by one. */
function streamOf(...chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c));
}

async function collect(body: ReadableStream<Uint8Array>): Promise<string[]> {
  return await Array.fromAsync(splitLines(body));
}

Deno.test("splitLines: joins lines split across chunks", async () => {
  assert.deepEqual(
    await collect(streamOf('{"type":"ADD', 'ED"}\n{"ty', 'pe":"MODIFIED"}\n', '{"a":1}\n')),
    ['{"type":"ADDED"}', '{"type":"MODIFIED"}', '{"a":1}'],
  );
});

Deno.test("splitLines: decodes multi-byte UTF-8 characters split across chunks", async () => {
  const bytes = new TextEncoder().encode('{"name":"café 😀"}\n');
  const e = bytes.indexOf(0xc3); // "é" is c3 a9
  const emoji = bytes.indexOf(0xf0); // "😀" is f0 9f 98 80
  const chunks = [
    bytes.slice(0, e + 1),
    bytes.slice(e + 1, emoji + 1),
    bytes.slice(emoji + 1, emoji + 3),
    bytes.slice(emoji + 3),
  ];
  assert.deepEqual(await collect(streamOf(...chunks)), ['{"name":"café 😀"}']);
});

Deno.test("splitLines: one byte per chunk gives the same lines", async () => {
  const bytes = new TextEncoder().encode("ünï\ncödé\n");
  const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
  assert.deepEqual(await collect(streamOf(...chunks)), ["ünï", "cödé"]);
});

Deno.test("splitLines: strips CRLF line endings, even when CR and LF are in different chunks", async () => {
  assert.deepEqual(await collect(streamOf("one\r\ntwo\r", "\nthree\r\n")), [
    "one",
    "two",
    "three",
  ]);
});

Deno.test("splitLines: skips blank lines", async () => {
  assert.deepEqual(await collect(streamOf("\n\na\n\n  \r\nb\n\n")), ["a", "b"]);
});

Deno.test("splitLines: yields a final line that has no newline", async () => {
  assert.deepEqual(await collect(streamOf("first\nla", "st")), ["first", "last"]);
});

Deno.test("splitLines: an empty stream yields nothing", async () => {
  assert.deepEqual(await collect(streamOf()), []);
  assert.deepEqual(await collect(streamOf("")), []);
});

Deno.test("splitLines: yields a line before the rest of the stream arrives", async () => {
  const encoder = new TextEncoder();
  const rest = Promise.withResolvers<void>();
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      pulls++;
      if (pulls === 1) return controller.enqueue(encoder.encode("early\nla"));
      await rest.promise; // the rest is held back until the first line has been seen
      if (pulls === 2) controller.enqueue(encoder.encode("te\n"));
      else controller.close();
    },
  });
  const lines = splitLines(body);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const first = await Promise.race([
    lines.next(),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("no line before the stream went on")), 2000);
    }),
  ]).finally(() => clearTimeout(timer));
  assert.deepEqual(first, { value: "early", done: false });
  rest.resolve();
  assert.deepEqual(await Array.fromAsync(lines), ["late"]);
});
