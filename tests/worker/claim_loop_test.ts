import assert from "node:assert/strict";
import type { RequestKind } from "../../lib/queue/protocol.ts";
import { type ClaimedRequest, type ClaimRooms, roomOf } from "../../lib/queue/claim.ts";
import { ClaimLoop, Slots } from "../../lib/worker/claim_loop.ts";
import { claimedRequest, recordingLog } from "./fakes.ts";

function request(id: number, kind: RequestKind, requestedBy = "alice"): ClaimedRequest {
  return claimedRequest({ id, kind, requestedBy });
}

/** Roles may take as many as the kinds have, unless a test says otherwise. */
const UNSHARED = { api: 1000, watch: 1000 };

/**
 * A queue of `queued` requests claimed in id order, within the slots and each role's room asked
 * for; requests it runs stay running until `finish(id)`.
 */
function fakeQueue(
  queued: ClaimedRequest[],
  limits: Record<RequestKind, number>,
  roleLimits: Record<RequestKind, number> = UNSHARED,
) {
  const asked: Record<RequestKind, number>[] = [];
  const askedRooms: ClaimRooms[] = [];
  const advanced: number[] = [];
  const started: number[] = [];
  const finishers = new Map<number, () => void>();
  const state = { stopping: false, failNext: false, gate: undefined as Promise<void> | undefined };
  const log = recordingLog();
  const loop = new ClaimLoop({
    claims: {
      async claim(rooms) {
        asked.push({ ...rooms.slots });
        askedRooms.push(structuredClone(rooms));
        if (state.failNext) {
          state.failNext = false;
          throw new Error("connection lost");
        }
        // The statement's snapshot: what is queued when it starts.
        const claimed: ClaimedRequest[] = [];
        for (const kind of ["api", "watch"] as const) {
          const taken = new Map<string, number>();
          for (const r of queued.filter((r) => r.kind === kind)) {
            const room = roomOf(rooms, kind, r.requestedBy);
            const n = taken.get(r.requestedBy) ?? 0;
            if (n >= room || claimed.filter((c) => c.kind === kind).length >= rooms.slots[kind]) {
              continue;
            }
            taken.set(r.requestedBy, n + 1);
            claimed.push(r);
          }
        }
        for (const r of claimed) queued.splice(queued.indexOf(r), 1);
        await state.gate;
        return claimed.sort((a, b) => a.id - b.id);
      },
    },
    limits,
    roleLimits,
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
  /** Finishes request `id` and lets its slot be freed, without waiting for a claim. */
  const end = async (id: number) => {
    finishers.get(id)!();
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  /** Finishes request `id`, then lets the loop settle. */
  const finish = async (id: number) => {
    await end(id);
    await loop.idle;
  };
  const settle = async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    await loop.idle;
  };
  return { loop, asked, askedRooms, advanced, started, state, log, end, finish, settle, queued };
}

Deno.test("Slots: room per kind; freeing reports when a full kind gets its first free slot", () => {
  const slots = new Slots({ api: 2, watch: 1 }, UNSHARED);
  slots.take("api", "alice");
  slots.take("api", "alice");
  slots.take("watch", "alice");
  assert.equal(slots.room("api"), 0);
  assert.equal(slots.room("watch"), 0);
  assert.equal(slots.free("api", "alice"), true); // it was full: a claim may wait for this slot
  assert.equal(slots.free("api", "alice"), false);
  assert.equal(slots.room("api"), 2);
});

Deno.test("Slots: each role's room; freeing reports when a role's full share frees", () => {
  const slots = new Slots({ api: 10, watch: 10 }, { api: 2, watch: 1 });
  slots.take("api", "alice");
  slots.take("api", "alice");
  slots.take("watch", "bob");
  assert.equal(slots.roleRoom("api", "alice"), 0);
  assert.equal(slots.roleRoom("api", "bob"), 2);
  assert.deepEqual(slots.claimRooms(), {
    slots: { api: 8, watch: 9 },
    roleSlots: { api: 2, watch: 1 },
    busy: { roles: ["alice", "bob"], api: [0, 2], watch: [1, 0] },
  });
  assert.equal(slots.free("api", "alice"), true); // alice's share was full
  assert.equal(slots.free("api", "alice"), false);
  assert.equal(slots.free("watch", "bob"), true);
  // Roles that run nothing are not passed: they get the share of any role.
  assert.deepEqual(slots.claimRooms().busy, { roles: [], api: [], watch: [] });
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

Deno.test("ClaimLoop: a role at its share waits while others run; its freed slot claims again", async () => {
  const queue = fakeQueue(
    [request(1, "api", "alice"), request(2, "api", "alice"), request(3, "api", "bob")],
    { api: 10, watch: 10 },
    { api: 1, watch: 1 },
  );
  queue.loop.wake();
  await queue.settle();
  assert.deepEqual(queue.started, [1, 3]);
  assert.deepEqual(queue.askedRooms[0].busy, { roles: [], api: [], watch: [] });
  // The kind has room, but alice's share was full: its freed slot wakes the loop.
  await queue.finish(1);
  assert.deepEqual(queue.started, [1, 3, 2]);
  assert.deepEqual(queue.askedRooms.at(-1)!.busy, {
    roles: ["bob"],
    api: [0],
    watch: [1],
  });
});

Deno.test("ClaimLoop: a role's calls that finish during a claim that filled its room claim again", async () => {
  const queue = fakeQueue(
    [1, 2, 3, 4, 5].map((id) => request(id, "api")),
    { api: 10, watch: 10 },
    { api: 2, watch: 1 },
  );
  queue.loop.wake();
  await queue.settle();
  assert.deepEqual(queue.started, [1, 2]);
  let open!: () => void;
  queue.state.gate = new Promise((resolve) => open = resolve);
  await queue.end(1); // alice's share was full: this wakes a claim, which waits at the gate
  await queue.end(2); // no wake: a claim is under way, and the share was not full
  open();
  await queue.settle();
  // The claim took its room of one; the slot freed meanwhile was claimed right after.
  assert.deepEqual(queue.started, [1, 2, 3, 4]);
});
