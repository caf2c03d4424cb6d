import assert from "node:assert/strict";
import { Writable } from "node:stream";
import type { Sql } from "../../lib/db.ts";
import { ResponsePieces } from "../../lib/queue/pieces.ts";
import { COPY_BINARY_HEADER, COPY_BINARY_TRAILER, pieceHeader } from "../../lib/copy_binary.ts";

/** A COPY as a fake session sees it: the statement, the bytes sent, and how it ended. */
interface FakeCopy {
  statement: string;
  bytes: number[];
  ended: boolean;
  destroyed: Error | undefined;
}

/**
 * A stand-in for a one-connection postgres.js client that can only start a COPY FROM STDIN:
 * enough for the session pool and the sink, with no server.
 */
function fakeCopySession(copies: FakeCopy[]): Sql {
  const tag = (strings: TemplateStringsArray) => ({
    writable: () => {
      const copy: FakeCopy = {
        statement: strings.join("?"),
        bytes: [],
        ended: false,
        destroyed: undefined,
      };
      copies.push(copy);
      const writable = new Writable({
        write(chunk, _encoding, done) {
          copy.bytes.push(...chunk);
          done();
        },
        final(done) {
          copy.ended = true;
          done();
        },
        destroy(error, done) {
          copy.destroyed = error ?? undefined;
          done(null);
        },
      });
      return Promise.resolve(writable);
    },
  });
  // The pool and the sink use only the tag and end(); the rest of Sql is never called.
  return Object.assign(tag, { end: () => Promise.resolve() }) as unknown as Sql;
}

function pool(maxCopies: number) {
  const copies: FakeCopy[] = [];
  let opened = 0;
  const pieces = new ResponsePieces(
    fakeCopySession([]), // never used by sink
    "worker",
    () => {
      opened++;
      return fakeCopySession(copies);
    },
    maxCopies,
  );
  return { pieces, copies, opened: () => opened };
}

Deno.test("ResponsePieces.sink: header, a tuple per chunk, trailer; closing ends the COPY", async () => {
  const { pieces, copies } = pool(2);
  const sink = await pieces.sink(9, new AbortController().signal);
  const writer = sink.getWriter();
  await writer.write(Uint8Array.of(1, 2, 3));
  await writer.write(Uint8Array.of(4));
  await writer.close();
  assert.equal(copies.length, 1);
  assert.match(
    copies[0].statement,
    /copy omni_kube\.response_piece .* from stdin \(format binary\)/,
  );
  assert.deepEqual(copies[0].bytes, [
    ...COPY_BINARY_HEADER,
    ...pieceHeader(9, 0, 3),
    1,
    2,
    3,
    ...pieceHeader(9, 1, 1),
    4,
    ...COPY_BINARY_TRAILER,
  ]);
  assert.equal(copies[0].ended, true);
});

Deno.test("ResponsePieces.sink: a session freed by a closed sink serves the next one", async () => {
  const { pieces, opened } = pool(2);
  const signal = new AbortController().signal;
  await (await pieces.sink(1, signal)).close();
  await (await pieces.sink(2, signal)).close();
  assert.equal(opened(), 1);
});

Deno.test("ResponsePieces.sink: at most maxCopies at once; the next waits for one to finish", async () => {
  const { pieces, opened } = pool(1);
  const signal = new AbortController().signal;
  const first = await pieces.sink(1, signal);
  let secondOpened = false;
  const second = pieces.sink(2, signal).then((sink) => {
    secondOpened = true;
    return sink;
  });
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(secondOpened, false);
  await first.close();
  await (await second).close();
  assert.equal(opened(), 1);
});

Deno.test("ResponsePieces.sink: aborting fails the COPY (the server discards it) and frees the session", async () => {
  const { pieces, copies, opened } = pool(1);
  const signal = new AbortController().signal;
  const sink = await pieces.sink(1, signal);
  await sink.abort(new Error("body failed"));
  assert.equal(copies[0].destroyed?.message, "body failed");
  await (await pieces.sink(2, signal)).close();
  assert.equal(opened(), 1);
});

Deno.test("ResponsePieces.sink: closing after the signal aborted fails and frees the session", async () => {
  const { pieces, opened } = pool(1);
  const abort = new AbortController();
  const sink = await pieces.sink(1, abort.signal);
  abort.abort(new Error("timed out"));
  await assert.rejects(sink.close(), /timed out/);
  await (await pieces.sink(2, new AbortController().signal)).close();
  assert.equal(opened(), 1);
});
