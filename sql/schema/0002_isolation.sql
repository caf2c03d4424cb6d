-- What members cannot forge or squat, and what lets the worker share fairly between roles.

-- The SQLSTATE a failed request's caller gets (NULL: OKT01, no HTTP answer), e.g. OKL01 when the
-- response went over the worker's size limit.
alter table omni_kube.request add column error_code text;

-- A request's advisory lock key is a keyed hash of its id (omni_kube._lock_key): members may take
-- advisory locks on any key, and with ids alone they could hold the keys of requests not yet
-- made. The salt is readable only by the shim's owner. Not a credential: it only hides which keys
-- future requests will use.
insert into omni_kube.instance_settings (name, value)
values ('lock_salt', (floor(random() * 2147483647))::int::text)
on conflict (name) do nothing;
comment on table omni_kube.instance_settings is
  'loopback_connstr: libpq connection string for the autonomous connection (default: this server''s unix socket and port, as the installing role; it must connect as a superuser). lock_salt: keys the request locks (set at install; changing it while calls wait delays them by up to a second). role_queue_limit: the most queued requests a role may have (written by each worker at start, from --role-queue-limit; none: no limit).';

-- The key of the lock a worker's queue session holds while it lives: drawn at random each time
-- it registers (so that no one can hold it first), and shown here for liveness checks.
alter table omni_kube.workers add column lock_key int4;

-- Claiming takes queued requests role by role, oldest first within each, so that one role's
-- large batch cannot hold up another's call; the same index counts a role's queued requests.
create index request_queued_by_role on omni_kube.request (kind, requested_by, id)
  where state = 'queued';
-- It replaces request_queued, which served only the claim in id order: with both, a plan made
-- while the table was small could find one role's queued requests by reading all of them there.
drop index omni_kube.request_queued;
