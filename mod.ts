/**
 * omni_kube bridge: SQL in PostgreSQL calls the Kubernetes API through a queue served by this
 * worker. This module is the library's public surface.
 *
 * @module
 */
export {
  contentTypeFor,
  HTTP_METHODS,
  type HttpMethod,
  KubeHttp,
  type KubeRequest,
  type KubeTarget,
  KubeTransportError,
  normalizeServer,
} from "./lib/kube/client.ts";
