/**
 * Newline-delimited JSON from a byte stream: yields each non-empty line as text as soon as its
 * newline arrives, without parsing it (PostgreSQL parses it once, as jsonb).
 *
 * @module
 */

/** The lines of `body`, decoded as UTF-8, without their line endings; blank lines are skipped. */
export async function* splitLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) yield line;
    }
  }
  const rest = buffered.trim();
  if (rest) yield rest;
}
