-- Named clusters: the contexts of the workers' kubeconfigs, which calls name with
-- `cluster => 'name'`, the roles granted each, and what each worker finds of the ones it serves.
-- The credentials of a named cluster stay in its worker: none of them is ever in the database.

-- The type of the `cluster` parameter of the functions that take one. A domain, not text, so that
-- a positional call made before clusters existed (`api(path, server)`) still means the function
-- it meant: given an untyped literal, PostgreSQL prefers the overload that takes text there.
create domain omni_kube.cluster_name as text;
-- The batch api()'s `clusters`: one cluster per path.
create domain omni_kube.cluster_names as text[];

-- The cluster a request goes to; NULL: the server and credentials it carries, or the worker's own.
alter table omni_kube.request add column cluster text;

-- Who may use which named cluster (omni_kube.grant_cluster, revoke_cluster): a role granted one,
-- and its members. Superusers may use every cluster. A cluster no worker serves yet may be
-- granted. The role by oid, so that a renamed role keeps its grants.
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
  server text,
  -- How the worker authenticates: token, client-certificate, exec or none.
  auth text not null,
  server_version text,
  -- NULL until probed.
  reachable boolean,
  last_error text,
  checked_at timestamptz,
  primary key (worker_id, name)
);

revoke all on omni_kube.cluster_grant, omni_kube.worker_cluster from public;

comment on table omni_kube.instance_settings is
  'loopback_connstr: libpq connection string for the autonomous connection (default: this server''s unix socket and port, as the installing role; it must connect as a superuser). lock_salt: keys the request locks (set at install; changing it while calls wait delays them by up to a second). role_queue_limit: the most queued requests a role may have (written by each worker at start, from --role-queue-limit; none: no limit). dispatch_channel: the secret channel on which GETs and HEADs that carry no secret are sent to the workers whole (set at install; workers read it at start). explicit_servers: which servers calls may name with server => (written by each worker at start, from --explicit-servers: any, none, or a comma-separated list of https://host[:port]).';
