import assert from "node:assert/strict";
import { parseDispatch } from "../../lib/queue/claim.ts";
import { Dispatcher } from "../../lib/worker/dispatch.ts";
import { recordingLog } from "./fakes.ts";

/** A dispatch payload as `omni_kube._insert_requests` writes it, for requests `ids` of alice. */
function payload(...ids: number[]): string {
  return JSON.stringify([
    "alice",
    false,
    null,
    30000,
    true,
    null,
    ids.map((id) => [id, "GET", `/api/v1/namespaces/n${id}`]),
  ]);
}

/**
 * A dispatcher whose window holds `held` (and takes any id nobody else holds, unless in
 * `othersHold`), with `room` slots, and claim statements that claim what `claimable` allows,
 * each one waiting for `state.gate` when set.
 */
function fakeDispatcher(
  {
    held = [] as number[],
    othersHold = [] as number[],
    runningAlready = [] as number[],
    room = 10,
    claimable = (_id: number): boolean => true,
  } = {},
) {
  const holds = new Set(held);
  const statements: number[][] = [];
  const started: number[] = [];
  const startedAfterClaim: number[] = [];
  const outcomes = new Map<number, boolean>();
  const followed: number[] = [];
  const state = {
    wakes: 0,
    gate: undefined as Promise<void> | undefined,
    fail: false,
    running: 0,
  };
  const log = recordingLog();
  const dispatcher = new Dispatcher({
    window: {
      holds: (id) => holds.has(id) ? 1 : 0,
      follow: (next) => {
        followed.push(next);
        return Promise.resolve();
      },
      hold: (id) => holds.add(id),
    },
    locks: {
      tryLockQueued: (ids) => Promise.resolve(ids.filter((id) => !othersHold.includes(id))),
    },
    claims: {
      async claimDispatched(ids) {
        statements.push([...ids]);
        await state.gate;
        if (state.fail) throw new Error("connection lost");
        return new Set(ids.filter(claimable));
      },
    },
    startUnclaimed: (_kind, _role, run) => {
      if (state.running >= room) return false;
      state.running++;
      run().finally(() => state.running--);
      return true;
    },
    run: async (request, claimed, afterClaim) => {
      started.push(request.id);
      if (afterClaim) startedAfterClaim.push(request.id);
      outcomes.set(request.id, await claimed);
    },
    isRunning: (id) => runningAlready.includes(id),
    wake: () => state.wakes++,
    log,
    claimDelayMs: 0,
  });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  return {
    dispatcher,
    statements,
    started,
    startedAfterClaim,
    outcomes,
    followed,
    state,
    log,
    settle,
  };
}

Deno.test("parseDispatch: each entry becomes a request that uses no stored credential", () => {
  const [request] = parseDispatch(JSON.stringify([
    "bob",
    true,
    "https://10.0.0.1:6443",
    5000,
    false,
    "PEM",
    [[7, "HEAD", "/healthz"]],
  ]));
  assert.deepEqual(request, {
    id: 7,
    kind: "api",
    requestedBy: "bob",
    method: "HEAD",
    path: "/healthz",
    body: null,
    stream: true,
    patchType: null,
    server: "https://10.0.0.1:6443",
    timeoutMs: 5000,
    useWorkerDefault: false,
    cacert: "PEM",
    clientCertificate: null,
    clientPrivateKey: null,
    token: null,
    locked: false,
    cluster: null,
  });
});

Deno.test("parseDispatch: a method that may not be sent twice, or a malformed payload, is refused", () => {
  const post = JSON.stringify(["alice", false, null, 30000, true, null, [[1, "POST", "/api"]]]);
  assert.throws(() => parseDispatch(post), /GET or HEAD/);
  assert.throws(() => parseDispatch(JSON.stringify([[1, "GET", "/api"]])), /dispatch payload/);
  assert.throws(() => parseDispatch('{"id": 1}'), /dispatch payload/);
});

Deno.test("Dispatcher: runs what its window holds, takes a free lock, leaves one another worker holds", async () => {
  const d = fakeDispatcher({ held: [1], othersHold: [3] });
  d.dispatcher.receive(payload(1, 2, 3));
  await d.settle();
  assert.deepEqual(d.started, [1, 2]);
  assert.deepEqual(d.startedAfterClaim, [2]); // its lock was free: a claim may have been under way
  assert.deepEqual(d.followed, [4]); // the window follows the newest id
  assert.deepEqual(d.statements, [[1, 2]]);
  await d.settle();
  assert.deepEqual([...d.outcomes], [[1, true], [2, true]]);
  assert.equal(d.state.wakes, 0);
});

Deno.test("Dispatcher: a request this worker's claim took before its dispatch came is not run again", async () => {
  const d = fakeDispatcher({ held: [1, 2], runningAlready: [1] });
  d.dispatcher.receive(payload(1, 2));
  await d.settle();
  assert.deepEqual(d.started, [2]);
});

Deno.test("Dispatcher: without room, a request is left to a claim", async () => {
  const d = fakeDispatcher({ held: [1, 2], room: 1 });
  d.dispatcher.receive(payload(1, 2));
  await d.settle();
  assert.deepEqual(d.started, [1]);
  assert.equal(d.state.wakes, 1);
});

Deno.test("Dispatcher: one claim statement takes every request started within its delay, or while the one before it runs", async () => {
  const d = fakeDispatcher({ held: [1, 2, 3, 4] });
  d.dispatcher.receive(payload(1));
  d.dispatcher.receive(payload(2));
  let open!: () => void;
  d.state.gate = new Promise((resolve) => open = resolve);
  await d.settle();
  await d.settle();
  assert.deepEqual(d.statements, [[1, 2]]);
  d.dispatcher.receive(payload(3));
  d.dispatcher.receive(payload(4));
  await d.settle();
  await d.settle();
  assert.deepEqual(d.statements, [[1, 2]]);
  open();
  await d.settle();
  await d.settle();
  assert.deepEqual(d.statements, [[1, 2], [3, 4]]);
});

Deno.test("Dispatcher.withdraw: a call that finished before its claim was sent leaves it", async () => {
  const d = fakeDispatcher({ held: [1, 2] });
  d.dispatcher.receive(payload(1, 2));
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(d.dispatcher.withdraw(1), true);
  await d.settle();
  await d.settle();
  assert.deepEqual(d.statements, [[2]]);
  assert.equal(d.dispatcher.withdraw(2), false); // sent already
  assert.deepEqual([...d.outcomes], [[1, false], [2, true]]);
});

Deno.test("Dispatcher: a request the claim did not take is told so; a failed claim leaves all to a claim", async () => {
  const d = fakeDispatcher({ held: [1, 2], claimable: (id) => id !== 2 });
  d.dispatcher.receive(payload(1, 2));
  await d.settle();
  await d.settle();
  assert.deepEqual([...d.outcomes], [[1, true], [2, false]]);

  const failing = fakeDispatcher({ held: [5] });
  failing.state.fail = true;
  failing.dispatcher.receive(payload(5));
  await failing.settle();
  await failing.settle();
  assert.deepEqual([...failing.outcomes], [[5, false]]);
  assert.equal(failing.state.wakes, 1);
  assert.match(failing.log.lines.join("\n"), /left to a claim/);
});

Deno.test("Dispatcher: a malformed payload is logged and its requests left to a claim", () => {
  const d = fakeDispatcher();
  d.dispatcher.receive("not json");
  assert.deepEqual(d.started, []);
  assert.equal(d.state.wakes, 1);
  assert.match(d.log.lines.join("\n"), /malformed dispatch/);
});
