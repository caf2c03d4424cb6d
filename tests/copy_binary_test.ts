import assert from "node:assert/strict";
import { Writable } from "node:stream";
import {
  BinaryCopy,
  COPY_BINARY_HEADER,
  COPY_BINARY_TRAILER,
  CopyRefused,
  JsonbTupleWriter,
  pieceHeader,
} from "../lib/copy_binary.ts";

/** Reads a binary COPY stream as PostgreSQL documents it; returns its tuples' fields. */
function readCopy(bytes: Uint8Array): Uint8Array[][] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const signature = [..."PGCOPY\n"].map((c) => c.charCodeAt(0)).concat([0xff, 0x0d, 0x0a, 0x00]);
  assert.deepEqual([...bytes.subarray(0, 11)], signature, "signature");
  assert.equal(view.getInt32(11), 0, "flags: no OIDs");
  const extension = view.getInt32(15);
  let at = 19 + extension;
  const tuples: Uint8Array[][] = [];
  for (;;) {
    const count = view.getInt16(at);
    at += 2;
    if (count === -1) break;
    const fields: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const length = view.getInt32(at);
      at += 4;
      fields.push(bytes.subarray(at, at + length));
      at += length;
    }
    tuples.push(fields);
  }
  assert.equal(at, bytes.length, "nothing after the trailer");
  return tuples;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

Deno.test("COPY_BINARY_HEADER: signature, zero flags, no header extension", () => {
  assert.deepEqual(
    [...COPY_BINARY_HEADER],
    [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
  );
});

Deno.test("COPY_BINARY_TRAILER: a field count of -1", () => {
  assert.equal(new DataView(COPY_BINARY_TRAILER.buffer).getInt16(0), -1);
  assert.equal(COPY_BINARY_TRAILER.length, 2);
});

Deno.test("pieceHeader: three fields, bigint id and int seq, then the piece's length", () => {
  const header = pieceHeader(2 ** 40 + 3, 7, 1234);
  const view = new DataView(header.buffer);
  assert.equal(header.length, 26);
  assert.equal(view.getInt16(0), 3);
  assert.equal(view.getInt32(2), 8);
  assert.equal(view.getBigInt64(6), BigInt(2 ** 40 + 3));
  assert.equal(view.getInt32(14), 4);
  assert.equal(view.getInt32(18), 7);
  assert.equal(view.getInt32(22), 1234);
});

Deno.test("a stream of header, tuples and trailer reads back as (request_id, seq, piece)", () => {
  const pieces = [
    new TextEncoder().encode('{"items":['),
    new Uint8Array([0xe2, 0x82]),
    new Uint8Array(),
  ];
  const bytes = concat(
    COPY_BINARY_HEADER,
    ...pieces.flatMap((piece, seq) => [pieceHeader(42, seq, piece.length), piece]),
    COPY_BINARY_TRAILER,
  );
  const tuples = readCopy(bytes);
  assert.equal(tuples.length, 3);
  tuples.forEach(([id, seq, piece], i) => {
    assert.equal(new DataView(id.buffer, id.byteOffset, 8).getBigInt64(0), 42n);
    assert.equal(new DataView(seq.buffer, seq.byteOffset, 4).getInt32(0), i);
    assert.deepEqual([...piece], [...pieces[i]]);
  });
});

/**
 * A COPY's stream as postgres.js makes it: `final` sends the end and waits for the server's answer
 * (`answer`), which may never come; until `final` runs, a query is refused with COPY_IN_PROGRESS.
 * Writes reach the socket a little later, so `final` runs some time after `end()`.
 */
function fakeCopy(answer: (done: (error?: Error) => void) => void) {
  const sent: number[] = [];
  const state = { inCopy: true, failedWith: undefined as Error | undefined, refusedEarly: false };
  const stream = new Writable({
    write(chunk, _encoding, done) {
      sent.push(...chunk);
      setTimeout(done, 1); // written to the socket a little later
    },
    final(done) {
      state.inCopy = false;
      answer(done);
    },
    destroy(error, done) {
      state.failedWith = error ?? undefined;
      done(null);
    },
  });
  /** The statement after the COPY, as the server answers it once the COPY is over. */
  const next = (outcome: "ok" | "aborted" | "lost") => () => {
    if (state.inCopy) {
      // In a transaction, postgres.js remembers this refusal and rolls back at the end.
      state.refusedEarly = true;
      return Promise.reject(
        Object.assign(new Error("copy in progress"), { code: "COPY_IN_PROGRESS" }),
      );
    }
    if (outcome === "ok") return Promise.resolve([]);
    return Promise.reject(
      outcome === "aborted"
        ? Object.assign(new Error("current transaction is aborted"), { code: "25P02" })
        : Object.assign(new Error("connection closed"), { code: "CONNECTION_CLOSED" }),
    );
  };
  return { stream, sent, state, next };
}

Deno.test("BinaryCopy.endThen: the end, then the next statement once the COPY is over", async () => {
  const fake = fakeCopy((done) => setTimeout(done, 5));
  const copy = await BinaryCopy.open(Promise.resolve(fake.stream));
  const tuples = new JsonbTupleWriter(copy);
  await tuples.add(new TextEncoder().encode("{}"));
  await tuples.flush();
  await copy.endThen(fake.next("ok"), AbortSignal.timeout(5000));
  assert.equal(readCopy(Uint8Array.from(fake.sent)).length, 1);
  assert.equal(fake.state.failedWith, undefined);
  assert.equal(fake.state.refusedEarly, false, "the next statement waited for the end to be sent");
});

Deno.test("BinaryCopy.endThen: a row refused after the end is reported, though postgres.js says nothing", async () => {
  // The server's error comes after the end was sent: postgres.js drops it and never ends the stream.
  const fake = fakeCopy(() => {});
  const copy = await BinaryCopy.open(Promise.resolve(fake.stream));
  const started = performance.now();
  await assert.rejects(copy.endThen(fake.next("aborted"), AbortSignal.timeout(5000)), CopyRefused);
  assert.ok(performance.now() - started < 1000, "reported at once, not at the deadline");
  assert.ok(fake.state.failedWith, "the COPY was failed, so that its connection leaves it");
  assert.equal(fake.state.refusedEarly, false);
});

Deno.test("BinaryCopy.end: a server that never answers fails the COPY at the deadline", async () => {
  const fake = fakeCopy(() => {});
  const copy = await BinaryCopy.open(Promise.resolve(fake.stream));
  await assert.rejects(copy.end(AbortSignal.timeout(50)), { name: "TimeoutError" });
  assert.ok(fake.state.failedWith);
});

Deno.test("BinaryCopy.endThen: any other failure of the next statement is its own", async () => {
  const fake = fakeCopy(() => {});
  const copy = await BinaryCopy.open(Promise.resolve(fake.stream));
  await assert.rejects(copy.endThen(fake.next("lost"), AbortSignal.timeout(5000)), {
    code: "CONNECTION_CLOSED",
  });
  assert.ok(fake.state.failedWith);
});

/**
 * Adds each text through one source buffer, overwritten for the next text as soon as the writer
 * allows (as the informer's read buffer is), then ends the COPY; returns the tuples' fields.
 */
async function writeThrough(texts: Uint8Array[], bufferBytes: number): Promise<Uint8Array[][]> {
  const fake = fakeCopy((done) => done());
  const copy = await BinaryCopy.open(Promise.resolve(fake.stream));
  const tuples = new JsonbTupleWriter(copy, bufferBytes);
  const source = new Uint8Array(Math.max(...texts.map((text) => text.length)));
  for (const text of texts) {
    source.set(text);
    await tuples.add(source.subarray(0, text.length));
    source.fill(0x21);
  }
  await tuples.flush();
  await copy.end(AbortSignal.timeout(5000));
  return readCopy(Uint8Array.from(fake.sent));
}

Deno.test("JsonbTupleWriter: one jsonb field per text, version byte 1, the text's bytes as they are", async () => {
  const texts = ['{"a":"\\u00e9\\n"}', '{"b":"é"}', "[]"].map((t) => new TextEncoder().encode(t));
  const tuples = await writeThrough(texts, 64 * 1024);
  assert.equal(tuples.length, 3);
  for (const [i, fields] of tuples.entries()) {
    assert.equal(fields.length, 1);
    assert.equal(fields[0][0], 1, "jsonb's version byte");
    assert.deepEqual(fields[0].subarray(1), texts[i]);
  }
});

Deno.test("JsonbTupleWriter: texts across both buffers, and larger than one, arrive whole and in order, though their source is overwritten", async () => {
  // Buffers of 40 bytes: some texts share one, some fill one each, some are larger than one; a
  // run of small ones fills buffer after buffer faster than the fake COPY takes them.
  const lengths = [5, 20, 33, 1, 80, 12, 26, 200, 3, 33, 33, 33, 0, ...Array(30).fill(8)];
  const texts = lengths.map((length, i) =>
    new TextEncoder().encode(JSON.stringify("x".repeat(length) + i))
  );
  const tuples = await writeThrough(texts, 40);
  assert.deepEqual(
    tuples.map(([field]) => new TextDecoder().decode(field.subarray(1))),
    texts.map((text) => new TextDecoder().decode(text)),
  );
});

Deno.test("JsonbTupleWriter: a COPY that failed fails the writes that follow", async () => {
  const fake = fakeCopy((done) => done());
  const copy = await BinaryCopy.open(Promise.resolve(fake.stream));
  const tuples = new JsonbTupleWriter(copy, 40);
  await tuples.add(new TextEncoder().encode('{"a":1}'));
  copy.fail(new Error("the list failed"));
  await assert.rejects(tuples.flush());
  await assert.rejects(async () => {
    for (let i = 0; i < 10; i++) await tuples.add(new TextEncoder().encode(`{"n":${i}}`));
  });
});

Deno.test("BinaryCopy.writeTaken: a stream destroyed while it holds the write fails it with the COPY's error", async () => {
  // postgres.js takes the bytes, then calls the write back only once its socket drains: the
  // header is called back, the next write is held.
  const writes: number[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      writes.push(chunk.length);
      if (writes.length === 1) done();
    },
  });
  const copy = await BinaryCopy.open(Promise.resolve(stream));
  const taken = copy.writeTaken(new Uint8Array(8));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(writes, [COPY_BINARY_HEADER.length, 8], "the write is held, not queued");
  stream.destroy(Object.assign(new Error("connection closed"), { code: "CONNECTION_CLOSED" }));
  await assert.rejects(taken, { code: "CONNECTION_CLOSED" });
});
