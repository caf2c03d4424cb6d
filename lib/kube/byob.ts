/**
 * Reading byte streams into buffers of our own. `fetch` hands each network read, a few
 * kilobytes, over in a fresh 64 KiB buffer that only the garbage collector frees: on a body of
 * megabytes the process grows by many times what it holds. A reader that brings its own buffer
 * gets the bytes in it instead.
 *
 * @module
 */

/**
 * A reader into our own buffers. A body made in memory (`new Response(text)`, a test's stream)
 * is not a byte stream, as fetch's are: it is read through one.
 */
export function byobReader(body: ReadableStream<Uint8Array>): ReadableStreamBYOBReader {
  try {
    return body.getReader({ mode: "byob" });
  } catch {
    const chunks = body.getReader();
    return new ReadableStream({
      type: "bytes",
      async pull(controller) {
        for (;;) {
          const { done, value } = await chunks.read();
          if (done) {
            controller.close();
            controller.byobRequest?.respond(0);
            return;
          }
          // (A byte stream takes no empty chunk.)
          if (value.byteLength > 0) return controller.enqueue(value);
        }
      },
      cancel: (reason) => chunks.cancel(reason),
    }).getReader({ mode: "byob" });
  }
}
