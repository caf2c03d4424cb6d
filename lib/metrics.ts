/**
 * The worker's Prometheus metrics: queue depth by state (read from the database at scrape time),
 * calls in flight, call latency by method, claim and complete statement times, results by status
 * class, reconnects; live tables mirrored, their writes and the events applied.
 *
 * @module
 */
import client from "prom-client";

/** Status class of a result: `2xx` ... `5xx`, or `transport_error` when no HTTP answer came. */
export function statusClass(status: number | undefined): string {
  return status === undefined ? "transport_error" : `${Math.floor(status / 100)}xx`;
}

/** The worker's metrics, in a registry of their own. */
export class WorkerMetrics {
  readonly registry = new client.Registry();
  readonly inFlight = new client.Gauge({
    name: "omni_kube_calls_in_flight",
    help: "Calls and watches the worker is running now.",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly latency = new client.Histogram({
    name: "omni_kube_call_duration_seconds",
    help: "Time from claim to result of each call, by kind and HTTP method.",
    labelNames: ["kind", "method"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly queueStatements = new client.Histogram({
    name: "omni_kube_queue_statement_seconds",
    help: "Time of the worker's claim and complete statements (a batch each), by statement.",
    labelNames: ["statement"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly results = new client.Counter({
    name: "omni_kube_call_results_total",
    help: "Finished calls by kind and status class (2xx..5xx, transport_error).",
    labelNames: ["kind", "status_class"],
    registers: [this.registry],
  });
  readonly reconnects = new client.Counter({
    name: "omni_kube_database_reconnects_total",
    help: "Times the worker reopened its queue session after losing it.",
    registers: [this.registry],
  });

  readonly liveWrites = new client.Histogram({
    name: "omni_kube_live_write_seconds",
    help: "Time of each transaction writing a live table: a batch of events, or a whole list.",
    labelNames: ["kind"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
    registers: [this.registry],
  });
  readonly liveEvents = new client.Counter({
    name: "omni_kube_live_events_total",
    help: "Watch events applied to live tables.",
    registers: [this.registry],
  });
  readonly liveTables = new client.Gauge({
    name: "omni_kube_live_tables",
    help: "Live tables this worker mirrors now.",
    registers: [this.registry],
  });

  readonly asyncAttempts = new client.Counter({
    name: "omni_kube_async_attempts_total",
    help: "Attempts at async calls, by what followed: done, failed, retry.",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly asyncCallbacks = new client.Counter({
    name: "omni_kube_async_callbacks_total",
    help: "Callbacks of async calls run by this worker.",
    registers: [this.registry],
  });

  /**
   * `queueDepth` and `asyncDepth` are asked at each scrape for the number of requests, and of
   * async requests, in each state.
   */
  constructor(
    queueDepth: () => Promise<Record<string, number>>,
    asyncDepth: () => Promise<Record<string, number>> = () => Promise.resolve({}),
  ) {
    const depthGauge = (name: string, help: string, depth: typeof queueDepth) =>
      new client.Gauge({
        name,
        help,
        labelNames: ["state"],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const [state, count] of Object.entries(await depth())) this.set({ state }, count);
        },
      });
    depthGauge(
      "omni_kube_queue_requests",
      "Requests in the queue table by state (kept for the retention period once finished).",
      queueDepth,
    );
    depthGauge(
      "omni_kube_async_requests",
      "Async requests (api_async) by state (kept for the retention period once finished).",
      asyncDepth,
    );
  }

  /** The metrics in the Prometheus text format. */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }
}
