import assert from "node:assert/strict";
import { ByteBudget, ResponseLimitExceeded } from "../../lib/kube/limits.ts";
import { byteLines, lines, splitLines } from "../../lib/kube/ndjson.ts";
import { endlessBody, promptly } from "./fakes.ts";

/** A byte stream that delivers `chunks` one by one. */
function streamOf(...chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c));
}

async function collect(body: ReadableStream<Uint8Array>): Promise<string[]> {
  return await Array.fromAsync(splitLines(body));
}

async function collectWith(
  body: ReadableStream<Uint8Array>,
  budget: ByteBudget,
): Promise<string[]> {
  return await Array.fromAsync(splitLines(body, { budget }));
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

Deno.test("lines: each line with the bytes it came in as", async () => {
  const bytes = new TextEncoder().encode("ab\r\n\n  \ncafé\n");
  assert.deepEqual(await Array.fromAsync(lines(ReadableStream.from([bytes]))), [
    { text: "ab", bytes: 3 },
    { text: "café", bytes: 5 },
  ]);
});

Deno.test("lines: the budget holds the lines yielded and the one being read, nothing else", async () => {
  const budget = new ByteBudget(100);
  const seen: number[] = [];
  for await (
    const line of lines(streamOf("\n\n1234\r\n", "\n  \n", "56789\n", "abc"), { budget })
  ) {
    seen.push(budget.used);
    if (line.text === "56789") budget.refund(line.bytes); // dropped by its consumer
  }
  // "1234\r", then "56789" too (given back after), then "abc"; blank lines and newlines never.
  assert.deepEqual(seen, [5, 10, 8]);
});

Deno.test("lines: a line that never ends fails at the budget, and the body is cancelled", async () => {
  const endless = endlessBody("x".repeat(1000));
  const read = Array.fromAsync(splitLines(endless.body, { budget: new ByteBudget(64 * 1024) }));
  await assert.rejects(promptly(read), (error) => {
    assert.ok(error instanceof ResponseLimitExceeded);
    assert.equal(error.limit, 64 * 1024);
    return true;
  });
  // Counted as the bytes arrived: no more than one chunk past the limit was read.
  assert.ok(endless.pulled <= 64 * 1024 + 1000, `${endless.pulled} bytes read`);
  assert.ok(endless.cancelled?.reason instanceof ResponseLimitExceeded);
});

Deno.test("lines: endless lines a consumer keeps fail at the budget", async () => {
  const endless = endlessBody('{"a":1}\n');
  const budget = new ByteBudget(1000);
  let kept = 0;
  await assert.rejects(
    promptly((async () => {
      for await (const _ of splitLines(endless.body, { budget })) kept++;
    })()),
    ResponseLimitExceeded,
  );
  // 7 bytes a line, held; each newline given back.
  assert.equal(kept, Math.floor(1000 / 7));
  assert.ok(endless.cancelled);
});

Deno.test("lines: blank lines cost nothing once split, however many", async () => {
  // (A chunk is charged whole as it arrives: these come in chunks smaller than the budget.)
  const blanks = Array.from({ length: 5000 }, (_, i) => i % 2 ? "\n\n" : " \r\n");
  assert.deepEqual(await collectWith(streamOf(...blanks, "ok\n"), new ByteBudget(10)), ["ok"]);
});

Deno.test("lines: an abort ends a read at once, even from a body that ignores it", async () => {
  const stalled = endlessBody('{"a":1}\n', { stallAfter: 3 });
  const abort = new AbortController();
  const seen: string[] = [];
  const read = (async () => {
    for await (const line of splitLines(stalled.body, { signal: abort.signal })) seen.push(line);
  })();
  setTimeout(() => abort.abort(new Error("caller gone")), 20);
  await assert.rejects(promptly(read), { message: "caller gone" });
  assert.equal(seen.length, 3);
  assert.equal((stalled.cancelled?.reason as Error)?.message, "caller gone");
  // An abort before the first read ends it too.
  const again = endlessBody("x", { stallAfter: 0 });
  await assert.rejects(
    promptly(Array.fromAsync(splitLines(again.body, { signal: abort.signal }))),
    /caller gone/,
  );
  assert.ok(again.cancelled);
});

Deno.test("lines: a consumer that stops early cancels the body", async () => {
  const endless = endlessBody('{"a":1}\n');
  for await (const _ of splitLines(endless.body)) break;
  assert.ok(endless.cancelled);
});

Deno.test("byteLines: each line's bytes as sent, trimmed of blanks, joined across chunks", async () => {
  const encoder = new TextEncoder();
  const bytes = encoder.encode('  {"a":"é"}\r\n\n{"b":\n{"c":"\\n"} \n');
  const chunks = [bytes.slice(0, 6), bytes.slice(6, 17), bytes.slice(17)];
  const budget = new ByteBudget(1000);
  // Copied as they come: a line's view lasts until the next line is asked for.
  const got = await Array.fromAsync(
    byteLines(streamOf(...chunks), { budget }),
    (line) => ({ ...line, data: line.data.slice() }),
  );
  assert.deepEqual(got.map((line) => [...line.data]), [
    [...encoder.encode('{"a":"é"}')],
    [...encoder.encode('{"b":')],
    [...encoder.encode('{"c":"\\n"}')],
  ]);
  // Each line holds what it came in as (blanks included, newline excluded); the rest is refunded.
  assert.deepEqual(got.map((line) => line.bytes), [13, 5, 11]);
  assert.equal(budget.used, 13 + 5 + 11);
});

Deno.test("byteLines: a byte stream read into one buffer; lines longer than it, and across reads", async () => {
  const encoder = new TextEncoder();
  const long = `{"data":"${"x".repeat(200 * 1024)}"}`;
  const text = `{"a":1}\n${long}\n{"b":"ü"}\n{"c":3}`;
  const bytes = encoder.encode(text);
  // As fetch's bodies are: a byte stream, handing over a few KiB at a time.
  let at = 0;
  const body = new ReadableStream({
    type: "bytes",
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        controller.byobRequest?.respond(0);
        return;
      }
      const size = Math.min(3 * 1024 + 7, bytes.length - at);
      controller.enqueue(bytes.slice(at, at += size));
    },
  });
  const seen: string[] = [];
  // Each line is decoded before the next is asked for, as the line's view allows.
  for await (const line of byteLines(body)) seen.push(new TextDecoder().decode(line.data));
  assert.deepEqual(seen, ['{"a":1}', long, '{"b":"ü"}', '{"c":3}']);
});
