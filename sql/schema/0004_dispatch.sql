-- Dispatch: a GET or HEAD that carries no secret travels whole in a notification on a channel
-- whose name only the shim's owner reads, so that the worker holding its lock starts the call
-- without a claim round trip (sql/functions/protocol/README.md). Anyone may LISTEN on a channel
-- they can name: the name is a random secret, like lock_salt, and changing it needs only a worker
-- restart.
insert into omni_kube.instance_settings (name, value)
values ('dispatch_channel', 'omni_kube_dispatch_' || md5(gen_random_uuid()::text || random()::text))
on conflict (name) do nothing;
comment on table omni_kube.instance_settings is
  'loopback_connstr: libpq connection string for the autonomous connection (default: this server''s unix socket and port, as the installing role; it must connect as a superuser). lock_salt: keys the request locks (set at install; changing it while calls wait delays them by up to a second). role_queue_limit: the most queued requests a role may have (written by each worker at start, from --role-queue-limit; none: no limit). dispatch_channel: the secret channel on which GETs and HEADs that carry no secret are sent to the workers whole (set at install; workers read it at start).';

-- Whether a request was dispatched: for a moment its call may be under way before its row says
-- so, and a claim by a worker that does not hold its lock must not send it again.
alter table omni_kube.request add column dispatched boolean not null default false;
