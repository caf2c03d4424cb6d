-- Lock keys: (class, key) pairs for pg_advisory_lock(int4, int4). A request's lock is held by the
-- worker until its result is committed; a worker's queue session holds its own worker lock while
-- it lives (see omni_kube._worker_alive).
-- _lock_class, _worker_lock_class and _lock_key are on every call's path: without a SET clause
-- they are inlined into the calling statement (a SQL function with one is parsed and planned again
-- in every transaction), and their bodies name only pg_catalog objects, so no search_path can
-- change what they do.
create or replace function omni_kube._lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442401'; -- 'omka'

create or replace function omni_kube._worker_lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442402'; -- 'omkb'

-- The key of request `request_id`'s lock: a hash of the id keyed by the install's lock_salt
-- (omni_kube._lock_salt()), so that no member can tell the keys of requests not yet made.
create or replace function omni_kube._lock_key(request_id bigint, salt int4) returns int4
  language sql immutable parallel safe
  as $$ select (pg_catalog.hashint8extended(request_id, salt)
                  operator(pg_catalog.&) 2147483647)::pg_catalog.int4 $$;

-- The salt of the request lock keys; only the shim's owner may read it. (A query of a table, so
-- never inlined: each evaluation runs it, about 12 µs. Read it once per statement or function.)
create or replace function omni_kube._lock_salt() returns int4
  language sql stable
  as $$ select s.value::pg_catalog.int4 from omni_kube.instance_settings s
         where s.name operator(pg_catalog.=) 'lock_salt' $$;
revoke all on function omni_kube._lock_salt() from public;

-- The lock a role's large enqueue holds while it counts and inserts (omni_kube._insert_requests),
-- keyed by a hash of the role keyed by the lock_salt, so that no member can hold another's.
create or replace function omni_kube._role_lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442403'; -- 'omkc'

create or replace function omni_kube._role_lock_key(role name, salt int4) returns int4
  language sql immutable parallel safe
  as $$ select (pg_catalog.hashtextextended(role::pg_catalog.text, salt)
                  operator(pg_catalog.&) 2147483647)::pg_catalog.int4 $$;
revoke all on function omni_kube._role_lock_class() from public;
revoke all on function omni_kube._role_lock_key(name, int4) from public;

-- Whether someone holds the worker lock `key` exclusively, as a living worker's queue session
-- does: a shared try fails then. A lock the try takes is released at once.
create or replace function omni_kube._worker_lock_held(key int4) returns boolean
  language sql volatile
  as $$
    select case when pg_catalog.pg_try_advisory_lock_shared(omni_kube._worker_lock_class(), key)
                then not pg_catalog.pg_advisory_unlock_shared(omni_kube._worker_lock_class(), key)
                else true end
  $$;

-- The keys of release 0.1.0: its workers and the callers that were waiting when it was upgraded
-- still use them during a rolling upgrade. To be retired once no supported release upgrades from
-- 0.1.0.
create or replace function omni_kube._lock_key(request_id bigint) returns int4
  language sql immutable parallel safe
  as 'select (request_id operator(pg_catalog.%) 2147483647)::pg_catalog.int4';

create or replace function omni_kube._worker_lock_key(worker uuid) returns int4
  language sql immutable parallel safe
  as $$ select (pg_catalog.hashtext(worker::pg_catalog.text) operator(pg_catalog.&) 2147483647)
                 operator(pg_catalog.|) 1 $$;
