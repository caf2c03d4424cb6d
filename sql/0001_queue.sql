-- The queue between SQL callers and the worker: requests, their credentials (unlogged), workers,
-- and the autonomous (dblink) channel through which callers commit requests independently of their
-- own transaction.

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

create table omni_kube.request (
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

-- Lock keys: (class, key) pairs for pg_advisory_lock(int4, int4). A request's lock is held by the
-- worker until its result is committed. While a worker lives, its queue session holds its own
-- worker lock exclusively and worker lock 0 shared (see omni_kube._worker_alive).
-- These four are on every call's path: without a SET clause they are inlined into the calling
-- statement (a SQL function with one is parsed and planned again in every transaction), and their
-- bodies name only pg_catalog objects, so no search_path can change what they do.
create function omni_kube._lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442401'; -- 'omka'

create function omni_kube._worker_lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442402'; -- 'omkb'

create function omni_kube._lock_key(request_id bigint) returns int4
  language sql immutable parallel safe
  as 'select (request_id operator(pg_catalog.%) 2147483647)::pg_catalog.int4';

-- Never 0: key 0 is the lock every worker holds shared.
create function omni_kube._worker_lock_key(worker uuid) returns int4
  language sql immutable parallel safe
  as $$ select (pg_catalog.hashtext(worker::pg_catalog.text) operator(pg_catalog.&) 2147483647)
                 operator(pg_catalog.|) 1 $$;

-- The role that may use the bridge.
do $$
begin
  if not exists (select from pg_roles where rolname = 'omni_kube') then
    create role omni_kube nologin;
  end if;
end
$$;
grant usage on schema omni_kube to omni_kube;
grant usage on type omni_kube.http_method, omni_kube.client_certificate,
  omni_kube.request_state to public;
