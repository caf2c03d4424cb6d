import assert from "node:assert/strict";
import { RenewableSession, type Sql, StatementHung } from "../lib/db.ts";

/** A stand-in client: only `end` is called on it by the session; the statements are the test's. */
function fakeClient(name: string, ended: string[]): Sql {
  // The session touches nothing but end(); the rest of a postgres.js client is not needed.
  return { name, end: () => (ended.push(name), Promise.resolve()) } as unknown as Sql;
}

Deno.test("RenewableSession: a hung statement throws, and the client is ended and replaced", async () => {
  const ended: string[] = [];
  let opened = 0;
  const session = new RenewableSession(() => fakeClient(`client ${++opened}`, ended));
  assert.equal(await session.run("a quick one", 1000, () => Promise.resolve(7)), 7);
  await assert.rejects(
    session.run("a claim", 20, () => new Promise(() => {})),
    (error) =>
      error instanceof StatementHung && /a claim did not finish within 0\.02 s/.test(error.message),
  );
  assert.deepEqual(ended, ["client 1"]);
  const used = await session.run(
    "the next",
    1000,
    (sql) => Promise.resolve((sql as unknown as { name: string }).name),
  );
  assert.equal(used, "client 2");
  // A statement that fails of itself leaves the client as it is.
  await assert.rejects(session.run("a refused one", 1000, () => Promise.reject(new Error("no"))));
  assert.equal(opened, 2);
  await session.end();
  assert.deepEqual(ended, ["client 1", "client 2"]);
});
