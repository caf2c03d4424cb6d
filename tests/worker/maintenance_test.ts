import assert from "node:assert/strict";
import type { DefaultCluster } from "../../lib/credentials.ts";
import { LockWindow } from "../../lib/worker/lock_window.ts";
import { Maintenance } from "../../lib/worker/maintenance.ts";
import { recordingLog } from "./fakes.ts";

const pod: DefaultCluster = {
  source: "pod service account",
  target: { server: "https://kubernetes.default.svc", token: "rotated", caCert: "CA" },
};

/**
 * Maintenance over fakes: statements that record what they are asked (`settled` answers with
 * `state.settled`, `orphaned` with `state.orphaned`), a real lock window over recording locks, a
 * writer with `state.pending` results, and requests `state.running`.
 */
function maintained(
  { inPod = true, retentionSeconds = 600 } = {},
) {
  const calls: string[] = [];
  const state = {
    next: 10,
    settled: [] as number[],
    orphaned: [] as number[],
    running: [] as number[],
    pending: 0,
    heartbeatFails: false,
    stopping: false,
  };
  const unlocked: number[][] = [];
  const aborted: [number[], string][] = [];
  const published: [string, string | undefined][] = [];
  const adopted: DefaultCluster[] = [];
  const window = new LockWindow(
    {
      tryLock: (ids) => Promise.resolve(ids),
      unlock: (ids) => {
        unlocked.push(ids);
        return Promise.resolve();
      },
    },
    2,
    (id) => state.running.includes(id),
  );
  const log = recordingLog();
  let wakes = 0;
  const maintenance = new Maintenance({
    statements: {
      register: (host, pid) => {
        calls.push(`register ${host} ${pid}`);
        return Promise.resolve();
      },
      publishPodCredentials: (token, cacert) => {
        published.push([token, cacert]);
        return Promise.resolve();
      },
      heartbeat: () => {
        calls.push("heartbeat");
        return state.heartbeatFails
          ? Promise.reject(new Error("connection lost"))
          : Promise.resolve();
      },
      settled: (ids) => {
        calls.push(`settled ${ids}`);
        return Promise.resolve(state.settled.filter((id) => ids.includes(id)));
      },
      orphaned: (ids) => {
        calls.push(`orphaned ${ids}`);
        return Promise.resolve(state.orphaned.filter((id) => ids.includes(id)));
      },
      purge: (retention) => {
        calls.push(`purge ${retention}`);
        return Promise.resolve(3);
      },
      unregister: () => {
        calls.push("unregister");
        return Promise.resolve();
      },
    },
    locks: { nextRequestId: () => Promise.resolve(state.next) },
    window,
    writer: {
      get pending() {
        return state.pending;
      },
      flush: () => {
        calls.push("flush");
        state.pending = 0;
        return Promise.resolve();
      },
    },
    running: () => state.running,
    abort: (ids, reason) => aborted.push([ids, reason]),
    wake: () => wakes++,
    stopping: () => state.stopping,
    readPodAccount: () => Promise.resolve(inPod ? pod : undefined),
    onPodAccount: (account) => adopted.push(account),
    host: "node-1",
    explicitServers: "any",
    pid: 17,
    retentionSeconds,
    log,
  });
  return {
    maintenance,
    window,
    calls,
    state,
    unlocked,
    aborted,
    published,
    adopted,
    log,
    wakes: () => wakes,
  };
}

Deno.test("Maintenance.register: registers, publishes the pod's credentials, opens the window", async () => {
  const m = maintained();
  m.window.hold(3); // from a session now gone
  await m.maintenance.register();
  assert.deepEqual(m.calls, ["register node-1 17"]);
  assert.ok(Date.now() - m.maintenance.lastHeartbeat < 1000);
  assert.deepEqual(m.published, [["rotated", "CA"]]);
  assert.deepEqual(m.adopted, [pod]);
  assert.deepEqual(m.window.held, [10, 11]);
});

Deno.test("Maintenance.register: outside a pod, publishes nothing", async () => {
  const m = maintained({ inPod: false });
  await m.maintenance.register();
  assert.deepEqual(m.published, []);
  assert.deepEqual(m.adopted, []);
});

Deno.test("Maintenance.tick: heartbeat, settled locks released, orphans aborted, results flushed, purge, wake", async () => {
  const m = maintained();
  await m.maintenance.register();
  m.state.settled = [10];
  m.state.running = [4, 5];
  m.state.orphaned = [5];
  m.state.pending = 2;
  m.state.next = 12;
  m.calls.length = 0;
  await m.maintenance.tick();
  assert.deepEqual(m.calls, [
    "heartbeat",
    "settled 10,11",
    "orphaned 4,5",
    "flush",
    "purge 600",
  ]);
  assert.deepEqual(m.unlocked, [[10]]);
  assert.deepEqual(m.aborted, [[[5], "cancelled, or its caller is gone"]]);
  // The window was taken over from the sequence's position.
  assert.deepEqual(m.window.held, [11, 12, 13]);
  assert.equal(m.published.length, 2); // at register, and with the purge
  assert.deepEqual(m.log.lines, ["purged finished requests"]);
  assert.equal(m.wakes(), 1);
});

Deno.test("Maintenance.tick: purges at most every 30 s, or every retention period if shorter", async () => {
  const m = maintained();
  await m.maintenance.tick();
  await m.maintenance.tick();
  assert.equal(m.calls.filter((c) => c.startsWith("purge")).length, 1);
  const short = maintained({ retentionSeconds: 0 });
  await short.maintenance.tick();
  await new Promise((resolve) => setTimeout(resolve, 2));
  await short.maintenance.tick();
  assert.equal(short.calls.filter((c) => c.startsWith("purge")).length, 2);
});

Deno.test("Maintenance.tick: after the session was lost, registers again first", async () => {
  const m = maintained();
  await m.maintenance.register();
  m.maintenance.sessionLost();
  assert.deepEqual(m.window.held, []); // the locks went with the connection
  m.calls.length = 0;
  await m.maintenance.tick();
  assert.deepEqual(m.calls.slice(0, 2), ["register node-1 17", "heartbeat"]);
  assert.deepEqual(m.log.lines[0], "queue session lost; registering again");
  m.calls.length = 0;
  await m.maintenance.tick();
  assert.equal(m.calls[0], "heartbeat");
});

Deno.test("Maintenance.tick: a failure is logged, and the next tick runs again", async () => {
  const m = maintained();
  m.state.heartbeatFails = true;
  await m.maintenance.tick();
  assert.deepEqual(m.log.lines, ["heartbeat failed; retrying"]);
  assert.equal(m.wakes(), 0);
  m.state.heartbeatFails = false;
  await m.maintenance.tick();
  assert.equal(m.wakes(), 1);
});

Deno.test("Maintenance.tick: skipped while one runs, and once stopping", async () => {
  const m = maintained();
  const first = m.maintenance.tick();
  await m.maintenance.tick();
  await first;
  assert.equal(m.calls.filter((c) => c === "heartbeat").length, 1);
  m.state.stopping = true;
  await m.maintenance.tick();
  assert.equal(m.calls.filter((c) => c === "heartbeat").length, 1);
});

Deno.test("Maintenance.unregister: removes the registration", async () => {
  const m = maintained();
  await m.maintenance.unregister();
  assert.deepEqual(m.calls, ["unregister"]);
});
