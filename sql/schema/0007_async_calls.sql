-- Asynchronous calls (omni_kube.api_async): requests written in the caller's own transaction, so
-- that they are sent only once it commits, and kept until a worker has sent them.
--
-- Unlike omni_kube.request, this table is WAL-logged: a committed request must survive a crash,
-- so its path, body and response are in the WAL, in every replica and backup. Its secrets (a token
-- or a client certificate passed inline) are not: they wait in the unlogged async_credentials, and
-- a request whose secrets a crash took fails with OKQ03 rather than being sent without them.
create table omni_kube.async_request (
  id bigint generated always as identity primary key,
  method omni_kube.http_method not null,
  path text not null,
  body jsonb,
  stream boolean not null default false,
  patch_type text check (patch_type in ('merge', 'json', 'strategic', 'apply')),
  server text,
  timeout_ms int not null,
  requested_by name not null,
  -- The worker's own credentials, else those below and in async_credentials (a CA is public).
  use_worker_default boolean not null,
  cacert text,
  -- Whether async_credentials holds a token or client certificate for it.
  has_secret boolean not null,
  -- Further attempts allowed after a transport error or a 429, 500, 502, 503 or 504 (idempotent
  -- methods only).
  retries int not null default 0 check (retries >= 0),
  -- Called once with (id, status, response) after the result is recorded, as requested_by.
  on_done regprocedure,
  state omni_kube.request_state not null default 'queued',
  attempts int not null default 0,
  -- A queued request is claimed from then on (a retry's backoff).
  next_attempt_at timestamptz not null default now(),
  status int2,
  response jsonb,
  -- The last attempt's error (a retried one's, while it waits for the next).
  error text,
  error_code text,
  worker_id uuid,
  created_at timestamptz not null default now(),
  claimed_at timestamptz,
  finished_at timestamptz,
  -- pending: finished, its callback not run yet; done; failed (callback_error says why).
  callback_state text check (callback_state in ('pending', 'done', 'failed')),
  callback_error text,
  callback_at timestamptz
);
do $$
begin
  alter table omni_kube.async_request alter column response set compression lz4;
exception when feature_not_supported then
  null;
end
$$;
create index async_request_due on omni_kube.async_request (next_attempt_at, id)
  where state = 'queued';
create index async_request_running on omni_kube.async_request (worker_id) where state = 'running';
create index async_request_callback on omni_kube.async_request (id)
  where callback_state = 'pending';
create index async_request_finished on omni_kube.async_request (finished_at)
  where finished_at is not null;

-- Never WAL-logged: deleted when the request is claimed; emptied by a crash.
create unlogged table omni_kube.async_credentials (
  request_id bigint primary key,
  client_certificate text,
  client_private_key text,
  token text
);
revoke all on omni_kube.async_request, omni_kube.async_credentials from public;

-- The callers of members' callbacks (omni_kube._async_caller), each owned by its member, where no
-- member may reach them.
create schema omni_kube_async;
revoke all on schema omni_kube_async from public;
