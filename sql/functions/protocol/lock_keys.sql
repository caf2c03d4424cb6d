-- Lock keys: (class, key) pairs for pg_advisory_lock(int4, int4). A request's lock is held by the
-- worker until its result is committed. While a worker lives, its queue session holds its own
-- worker lock exclusively and worker lock 0 shared (see omni_kube._worker_alive).
-- These four are on every call's path: without a SET clause they are inlined into the calling
-- statement (a SQL function with one is parsed and planned again in every transaction), and their
-- bodies name only pg_catalog objects, so no search_path can change what they do.
create or replace function omni_kube._lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442401'; -- 'omka'

create or replace function omni_kube._worker_lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1869442402'; -- 'omkb'

create or replace function omni_kube._lock_key(request_id bigint) returns int4
  language sql immutable parallel safe
  as 'select (request_id operator(pg_catalog.%) 2147483647)::pg_catalog.int4';

-- Never 0: key 0 is the lock every worker holds shared.
create or replace function omni_kube._worker_lock_key(worker uuid) returns int4
  language sql immutable parallel safe
  as $$ select (pg_catalog.hashtext(worker::pg_catalog.text) operator(pg_catalog.&) 2147483647)
                 operator(pg_catalog.|) 1 $$;
