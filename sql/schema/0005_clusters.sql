-- Named clusters: the contexts of the workers' kubeconfigs, which calls name with
-- `cluster => 'name'`, the roles granted each, and what each worker finds of the ones it serves.
-- The credentials of a named cluster stay in its worker: none of them is ever in the database.

-- The type of the `cluster` parameter of the functions that take one. A domain, not text, so that
-- a positional call to the form without a cluster (`api(path, server)`) resolves to that form:
-- given an untyped literal, PostgreSQL prefers the overload that takes text there.
create domain omni_kube.cluster_name as text;
-- The batch api()'s `clusters`: one cluster per path.
create domain omni_kube.cluster_names as text[];

-- The cluster a request goes to; NULL: the server and credentials it carries, or the worker's own.
alter table omni_kube.request add column cluster text;

-- Who may use which named cluster (omni_kube.grant_cluster, revoke_cluster): a role granted one,
-- and its members. Superusers may use every cluster. A cluster no worker serves yet may be
-- granted. The role by oid, so that a renamed role keeps its grants; the grants of a dropped role
-- are purged by the workers.
create table omni_kube.cluster_grant (
  cluster text not null,
  grantee oid not null,
  granted_by name not null,
  granted_at timestamptz not null default now(),
  primary key (cluster, grantee)
);

-- The clusters each worker serves, as it last found them: written when it registers, then by its
-- probe of every cluster's /version. Never a token, a key or a plugin's output.
create table omni_kube.worker_cluster (
  worker_id uuid not null references omni_kube.workers (id) on delete cascade,
  name text not null,
  -- False: the worker was asked to serve it and cannot (last_error says why); it claims none of
  -- its requests.
  usable boolean not null,
  server text,
  -- How the worker authenticates: token, client-certificate, exec or none; NULL when unusable.
  auth text,
  server_version text,
  -- NULL until probed.
  reachable boolean,
  last_error text,
  checked_at timestamptz,
  primary key (worker_id, name)
);

revoke all on omni_kube.cluster_grant, omni_kube.worker_cluster from public;

-- Which servers the worker calls when a call names one itself (server =>): any, none, or a
-- comma-separated list of origins (--explicit-servers). NULL: any (workers of 0.4.0 and older).
-- A call may name a server only if every live worker would call it, since any of them may claim it.
alter table omni_kube.workers add column explicit_servers text;
