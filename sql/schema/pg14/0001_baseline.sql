-- The schema of release 0.1.0: the queue (requests, their credentials, workers, response pieces),
-- the credentials a pod's worker publishes, and the changes transactional resource tables hold
-- until commit. Tables, types and indexes only; functions, views and grants are in ../functions.
-- Released: never edited. A change to any of these is a new numbered file beside this one.
-- The form for PostgreSQL 14 and older, which have no UNIQUE NULLS NOT DISTINCT: the same but for
-- pending_change's key, a unique index over coalesce(namespace, '') as 0003 gives every install.

create schema if not exists omni_kube;

-- dblink runs the autonomous commits. A dblink connection is shared by everything in its session,
-- and the shim's runs as the installing role: whoever may call dblink functions could use it. So
-- dblink goes into a schema nobody else may use, and an existing dblink that others may call is
-- refused rather than silently taken away from them.
do $$
declare
  fn regprocedure;
  grantees text;
begin
  if not exists (select from pg_catalog.pg_extension where extname = 'dblink') then
    create schema if not exists omni_kube_dblink;
    revoke all on schema omni_kube_dblink from public;
    create extension dblink schema omni_kube_dblink;
    for fn in
      select p.oid from pg_catalog.pg_proc p
        join pg_catalog.pg_depend d on d.objid = p.oid and d.deptype = 'e'
        join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'dblink'
    loop
      execute format('revoke all on function %s from public', fn);
    end loop;
  end if;
  select string_agg(distinct case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end, ', ')
    into grantees
    from pg_catalog.pg_proc p
    join pg_catalog.pg_depend d on d.objid = p.oid and d.deptype = 'e'
    join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'dblink'
    cross join lateral pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
   where a.privilege_type = 'EXECUTE'
     and (a.grantee = 0 or not (select rolsuper from pg_catalog.pg_roles where oid = a.grantee));
  if grantees is not null then
    raise exception 'omni_kube: dblink is installed and % may call its functions', grantees
      using hint = 'The shim''s dblink connection runs as its owner, so anyone who can call dblink could use it. Revoke EXECUTE on dblink''s functions from these roles (and PUBLIC), or drop dblink so the shim installs its own private copy.';
  end if;
end
$$;

create type omni_kube.http_method as enum ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS');

create type omni_kube.client_certificate as (
  certificate text,
  private_key text
);

create type omni_kube.request_state as enum ('queued', 'running', 'done', 'failed', 'cancelled');

-- Settings only the installing role may change (a caller-set GUC must not redirect the owner's
-- password-less autonomous connection).
create table omni_kube.instance_settings (
  name text primary key,
  value text not null
);
comment on table omni_kube.instance_settings is
  'loopback_connstr: libpq connection string for the autonomous connection (default: this server''s unix socket and port, as the installing role; it must connect as a superuser).';

create table omni_kube.workers (
  id uuid primary key,
  host text not null,
  pid int not null,
  -- The backend of the worker's queue session, which holds its locks.
  lock_backend_pid int not null,
  started_at timestamptz not null default now(),
  last_seen timestamptz not null default now()
);

-- Requests, and the responses stored in them, are never WAL-logged. A response can carry secrets
-- (GET a Secret, a ServiceAccount token request) and a request body can too (POST a Secret): logged,
-- they would be copied into every replica, WAL archive and backup, and kept there long after the
-- request itself is purged. Unlogged, the queue's three commits per call (enqueue, claim, result)
-- write only their commit records to the WAL, and none of them waits for a WAL flush under
-- synchronous_commit = on.
-- The price: after a crash (not a clean shutdown) the table is empty. The calls in flight ended
-- with their sessions in that crash anyway; the recent history in omni_kube.requests is lost. A
-- standby cannot read it.
create unlogged table omni_kube.request (
  id bigint generated always as identity primary key,
  kind text not null default 'api' check (kind in ('api', 'watch')),
  method omni_kube.http_method not null,
  path text not null,
  body jsonb,
  stream boolean not null default false,
  -- For PATCH: merge, json, strategic or apply (server-side apply); NULL infers from the body.
  patch_type text check (patch_type in ('merge', 'json', 'strategic', 'apply')),
  server text,
  timeout_ms int not null,
  -- Its place in the call that made it (a batch is its enqueue_key).
  position int,
  requested_by name not null,
  session_role name not null,
  backend_pid int not null,
  -- Makes the enqueue idempotent: a retried enqueue returns the rows already inserted.
  enqueue_key uuid not null,
  statement_started timestamptz not null,
  -- sha256 of the call including a hash of its credentials: the per-statement GET cache key.
  digest bytea,
  state omni_kube.request_state not null default 'queued',
  status int2,
  response jsonb,
  error text,
  worker_id uuid,
  created_at timestamptz not null default clock_timestamp(),
  claimed_at timestamptz,
  finished_at timestamptz
);
-- Responses (a list can be megabytes) are compressed with lz4 where the server has it: several
-- times faster to write and read than the default pglz.
do $$
begin
  alter table omni_kube.request alter column response set compression lz4;
exception when feature_not_supported then
  null;
end
$$;
create index request_queued on omni_kube.request (id) where state = 'queued';
create index request_digest on omni_kube.request (backend_pid, statement_started, digest)
  where digest is not null;
create index request_finished on omni_kube.request (finished_at) where finished_at is not null;
create index request_enqueue_key on omni_kube.request (enqueue_key);

-- Never WAL-logged: not in a replica, a backup or a crash-recovered database. Deleted when the
-- worker claims the request.
create unlogged table omni_kube.request_credentials (
  request_id bigint primary key,
  use_worker_default boolean not null,
  cacert text,
  client_certificate text,
  client_private_key text,
  token text
);

revoke all on omni_kube.request, omni_kube.request_credentials, omni_kube.workers,
  omni_kube.instance_settings from public;

-- The service-account token and CA of the pod a worker runs in, published by the worker at start
-- for omni_kube.pod_credentials(). Unlogged, like every credential here.
create unlogged table omni_kube.worker_pod_credentials (
  worker_id uuid primary key references omni_kube.workers (id) on delete cascade,
  token text not null,
  cacert text,
  read_at timestamptz not null default now()
);
revoke all on omni_kube.worker_pod_credentials from public;

-- The request behind a write to a resource view or table row (omni_kube._resource_request).
create type omni_kube.resource_request as (
  method omni_kube.http_method,
  -- The object's path (PUT, DELETE) or its collection's (POST).
  path text,
  collection text,
  body jsonb,
  name text,
  namespace text

);

-- Changes to transactional tables wait here for their commit. A row never outlives its
-- transaction: the commit trigger takes it, a rollback discards it. Unlogged: nothing to recover
-- after a crash, since the transaction is gone too. Only the _pending_* functions touch it.
create unlogged table omni_kube.pending_change (
  xact xid8 not null default pg_current_xact_id(),
  resource_table oid not null,
  name text not null,
  namespace text,
  method omni_kube.http_method not null,
  path text not null,
  body jsonb
);
create unique index pending_change_key
  on omni_kube.pending_change (xact, resource_table, name, coalesce(namespace, ''));
revoke all on omni_kube.pending_change from public;

-- Large response bodies (a list can be tens of megabytes) reach PostgreSQL in pieces as they
-- arrive, so that the worker never holds one whole: each piece is a chunk of the body as it came
-- off the network, copied in (COPY, binary format), and once the last has arrived the pieces are
-- joined, decoded and parsed into the request's response in one statement.
-- Unlogged: a piece lives only until its response is assembled, and an unfinished response is
-- worth nothing after a crash. Stored without compression: it is read back once, at once.
create unlogged table omni_kube.response_piece (
  request_id bigint not null,
  seq int not null,
  piece bytea not null,
  primary key (request_id, seq)
);
alter table omni_kube.response_piece alter column piece set storage external;
revoke all on omni_kube.response_piece from public;
