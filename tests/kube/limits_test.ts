import assert from "node:assert/strict";
import { ByteBudget, ResponseLimitExceeded, untilAborted } from "../../lib/kube/limits.ts";

Deno.test("ByteBudget: spends up to its maximum, fails past it, and takes refunds", () => {
  const budget = new ByteBudget(10);
  budget.spend(6);
  budget.spend(4);
  assert.equal(budget.used, 10);
  assert.throws(() => budget.spend(1), (error) => {
    assert.ok(error instanceof ResponseLimitExceeded);
    assert.equal(error.limit, 10);
    assert.equal(error.unit, "bytes");
    assert.equal(error.message, "the response exceeded 10 bytes");
    return true;
  });
  const refunded = new ByteBudget(10);
  refunded.spend(8);
  refunded.refund(5);
  refunded.spend(7);
  assert.equal(refunded.used, 10);
});

Deno.test("untilAborted: the promise's outcome, or the abort's reason as soon as it comes", async () => {
  assert.equal(await untilAborted(Promise.resolve(1), undefined), 1);
  assert.equal(await untilAborted(Promise.resolve(2), new AbortController().signal), 2);
  await assert.rejects(
    untilAborted(Promise.reject(new Error("read failed")), new AbortController().signal),
    { message: "read failed" },
  );
  const abort = new AbortController();
  const never = new Promise<number>(() => {});
  const waiting = untilAborted(never, abort.signal);
  abort.abort(new Error("caller gone"));
  await assert.rejects(waiting, { message: "caller gone" });
  await assert.rejects(untilAborted(never, abort.signal), { message: "caller gone" });
});
