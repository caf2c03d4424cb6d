/**
 * Back-pressure: 100,000 async requests committed at once are all completed by a worker process
 * whose memory stays bounded (it claims only what its slots can run), while api() calls made
 * meanwhile are answered at once from slots of their own rather than after the backlog.
 */
import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";
import { hostileEndpoint } from "./hostile.ts";

const REQUESTS = 100_000;
const ASYNC_CONCURRENCY = 64;

/** Resident memory of process `pid`, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

Deno.test("100,000 async requests: all completed, the worker's memory bounded, api() not starved", async () => {
  await using endpoint = await hostileEndpoint();
  await using bridge = await startBridge("async_backpressure");
  const { sql } = bridge;
  // Only the worker process serves: its memory is the one measured.
  const worker = await bridge.spawnWorker(["--async-concurrency", String(ASYNC_CONCURRENCY)]);
  await bridge.workers[0].stop();
  const before = await rss(worker.pid);

  await sql`
    select omni_kube.api_async('/ok', server => ${endpoint.url}, cacert => ${endpoint.caCert})
      from generate_series(1, ${REQUESTS})`;
  let peak = before;
  // The peak when half the requests were still queued: a worker that held what it has not run yet,
  // or what it has written, would keep growing after it.
  let halfwayPeak: number | undefined;
  let mostRunning = 0;
  const sampling = (async () => {
    for (;;) {
      peak = Math.max(peak, await rss(worker.pid));
      if (halfwayPeak === undefined) {
        const [{ past }] = await sql`
          select not exists (select from omni_kube.async_request where state = 'queued'
                              offset ${REQUESTS / 2}) as past`;
        if (past) halfwayPeak = peak;
      }
      // (Read through the partial indexes of queued and running requests: cheap at any size.)
      const [{ running, queued }] = await sql`
        select (select count(*) from omni_kube.async_request where state = 'running')::int
                 as running,
               exists (select from omni_kube.async_request where state = 'queued') as queued`;
      mostRunning = Math.max(mostRunning, running);
      if (!queued && running === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();

  // Sync calls keep their own slots: answered while most of the backlog is still queued.
  for (let i = 0; i < 10; i++) {
    const [{ kind }] =
      await sql`select omni_kube.api('/api/v1/namespaces/default') ->> 'kind' as kind`;
    assert.equal(kind, "Namespace");
  }
  const [{ queued }] = await sql`
    select count(*)::int as queued from omni_kube.async_request where state = 'queued'`;
  assert.ok(queued > REQUESTS / 2, `only ${queued} still queued after the api() calls`);

  await sampling;
  const [{ statuses, done }] = await sql`
    select array_agg(distinct status) as statuses, count(*)::int as done
      from omni_kube.async_request where state = 'done'`;
  assert.deepEqual([statuses, done], [[200], REQUESTS]);
  // Never more claimed than its slots and half as many ready for them, and as many results as
  // slots waiting to be written; its memory grew by far less than the requests' size.
  assert.ok(mostRunning <= 2.5 * ASYNC_CONCURRENCY, `${mostRunning} running at once`);
  const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  const growth = peak - before;
  const secondHalf = peak - (halfwayPeak ?? before);
  const figures = `grew by ${mb(growth)} in all, ${mb(secondHalf)} in the second half`;
  assert.ok(growth < 150 * 1024 * 1024, figures);
  assert.ok(secondHalf < 32 * 1024 * 1024, figures);
  console.log(`${figures}; at most ${mostRunning} running`);
});
