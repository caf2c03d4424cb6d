import assert from "node:assert/strict";
import type { RequestKind } from "../../lib/queue/protocol.ts";
import type { ClaimedRequest } from "../../lib/queue/claim.ts";
import { ClaimLoop, Slots } from "../../lib/worker/claim_loop.ts";
import { claimedRequest, recordingLog } from "./fakes.ts";

function request(id: number, kind: RequestKind): ClaimedRequest {
  return claimedRequest({ id, kind });
}

/**
 * A queue of `queued` requests claimed in id order, within the limits asked; requests it runs
 * stay running until `finish(id)`.
 */
function fakeQueue(queued: ClaimedRequest[], limits: Record<RequestKind, number>) {
  const asked: Record<RequestKind, number>[] = [];
  const advanced: number[] = [];
  const started: number[] = [];
  const finishers = new Map<number, () => void>();
  const state = { stopping: false, failNext: false, gate: undefined as Promise<void> | undefined };
  const log = recordingLog();
  const loop = new ClaimLoop({
    claims: {
      async claim(take) {
        asked.push({ ...take });
        if (state.failNext) {
          state.failNext = false;
          throw new Error("connection lost");
        }
        // The statement's snapshot: what is queued when it starts.
        const claimed: ClaimedRequest[] = [];
        for (const kind of ["api", "watch"] as const) {
          const ofKind = queued.filter((r) => r.kind === kind).slice(0, take[kind]);
          claimed.push(...ofKind);
        }
        for (const r of claimed) queued.splice(queued.indexOf(r), 1);
        await state.gate;
        return claimed.sort((a, b) => a.id - b.id);
      },
    },
    limits,
    run: (r) => {
      started.push(r.id);
      return new Promise((resolve) => finishers.set(r.id, resolve));
    },
    advance: (next) => {
      advanced.push(next);
      return Promise.resolve();
    },
    stopping: () => state.stopping,
    log,
  });
  /** Finishes request `id`, then lets the loop settle. */
  const finish = async (id: number) => {
    finishers.get(id)!();
    await settle();
  };
  const settle = async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    await loop.idle;
  };
  return { loop, asked, advanced, started, state, log, finish, settle, queued };
}

Deno.test("Slots: room per kind; freeing reports when a full kind gets its first free slot", () => {
  const slots = new Slots({ api: 2, watch: 1 });
  slots.take("api");
  slots.take("api");
  slots.take("watch");
  assert.equal(slots.room("api"), 0);
  assert.equal(slots.room("watch"), 0);
  assert.equal(slots.free("api"), true); // it was full: a claim may wait for this slot
  assert.equal(slots.free("api"), false);
  assert.equal(slots.room("api"), 2);
});

Deno.test("ClaimLoop: claims into each kind's rooms, again while a claim fills them", async () => {
  const queue = fakeQueue(
    [request(1, "api"), request(2, "watch"), request(3, "api"), request(4, "api")],
    { api: 2, watch: 3 },
  );
  queue.loop.wake();
  await queue.settle();
  // The first claim filled the api slots, so it claimed again, for watches only.
  assert.deepEqual(queue.asked, [{ api: 2, watch: 3 }, { api: 0, watch: 2 }]);
  assert.deepEqual(queue.started, [1, 2, 3]);
  assert.deepEqual(queue.advanced, [4]); // the id after the last claimed
  assert.equal(queue.loop.slots.room("api"), 0);
  assert.equal(queue.loop.slots.room("watch"), 2);
});

Deno.test("ClaimLoop: with every slot taken it does not claim; a finishing request wakes it", async () => {
  const queue = fakeQueue([request(1, "api"), request(2, "api")], { api: 1, watch: 0 });
  queue.loop.wake();
  await queue.settle();
  assert.deepEqual(queue.started, [1]);
  const claims = queue.asked.length;
  queue.loop.wake();
  await queue.settle();
  assert.equal(queue.asked.length, claims, "no claim while full");
  await queue.finish(1);
  assert.deepEqual(queue.started, [1, 2]);
});

Deno.test("ClaimLoop: a wake during a claim claims again afterwards", async () => {
  const queue = fakeQueue([request(1, "api")], { api: 4, watch: 4 });
  let open!: () => void;
  queue.state.gate = new Promise((resolve) => open = resolve);
  queue.loop.wake();
  queue.queued.push(request(2, "api")); // arrives while the first claim runs
  queue.loop.wake();
  open();
  await queue.settle();
  assert.equal(queue.asked.length, 2);
  assert.deepEqual(queue.started, [1, 2]);
  assert.deepEqual(queue.advanced, [2, 3]);
});

Deno.test("ClaimLoop: an empty claim ends the loop without moving the window", async () => {
  const queue = fakeQueue([], { api: 4, watch: 4 });
  queue.loop.wake();
  await queue.settle();
  assert.equal(queue.asked.length, 1);
  assert.deepEqual(queue.advanced, []);
});

Deno.test("ClaimLoop: a failed claim is logged and the next wake claims again", async () => {
  const queue = fakeQueue([request(1, "api")], { api: 4, watch: 4 });
  queue.state.failNext = true;
  queue.loop.wake();
  await queue.settle();
  assert.deepEqual(queue.log.lines, ["claim failed"]);
  queue.loop.wake();
  await queue.settle();
  assert.deepEqual(queue.started, [1]);
});

Deno.test("ClaimLoop: once stopping, nothing is claimed", async () => {
  const queue = fakeQueue([request(1, "api")], { api: 4, watch: 4 });
  queue.state.stopping = true;
  queue.loop.wake();
  await queue.settle();
  assert.deepEqual(queue.asked, []);
});
