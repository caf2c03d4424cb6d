-- What identical GETs of one statement share: NULL for anything but an api() GET.
create or replace function omni_kube._request_digest(
  kind text, method omni_kube.http_method, path text, stream boolean, server text,
  credentials_digest bytea, cluster text
) returns bytea
  -- (Stable, not immutable: so that it is inlined, since jsonb_build_array and convert_to are.)
  language sql stable
  as $$
    select case when method operator(pg_catalog.=) 'GET' and kind operator(pg_catalog.=) 'api' then
             pg_catalog.sha256(pg_catalog.convert_to(
               pg_catalog.jsonb_build_array(kind, path, stream, server,
                                            pg_catalog.encode(credentials_digest, 'hex'),
                                            cluster)::pg_catalog.text, 'UTF8'))
           end
  $$;
revoke all on function omni_kube._request_digest from public;

-- Transition: -> queued. Runs in the autonomous connection: inserts the requests and their
-- credentials and wakes the worker. Identical GETs of one statement (same digest) share one
-- request: the first one made, by an earlier call or earlier in this batch. Set-based: a batch of
-- a thousand is a few statements, not a thousand. Idempotent through `enqueue_key`: a retry
-- inserts nothing and maps every input again, to its own row (by position) or to the request it
-- shares. Returns the ids, one per input. Refuses (OKL03, nothing inserted) what would take the
-- role's queued requests past the workers' --role-queue-limit (instance setting role_queue_limit).
-- GETs and HEADs that carry no secret are announced whole on the secret dispatch channel
-- (instance setting dispatch_channel), the rest on omni_kube_request. `clusters`: each path's named
-- cluster, or NULL.
create or replace function omni_kube._insert_requests(
  enqueue_key uuid, requested_by name, session_role name, backend_pid int,
  statement_started timestamptz, kind text, methods omni_kube.http_method[], paths text[],
  bodies jsonb[], stream boolean, patch_type text, server text, timeout_ms int,
  use_worker_default boolean, cacert text, client_certificate text, client_private_key text,
  token text, credentials_digest bytea, clusters text[]
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- Its statements take arrays, whose length a generic plan cannot know: left to choose, PostgreSQL
  -- planned them anew on every call (0.5 ms for a single call, eight times the work itself). Their
  -- reads are by index: a plan made while the table looked small must not scan it whole later.
  set plan_cache_mode = force_generic_plan
  set enable_seqscan = off
  as $$
declare
  -- One per input; NULL for anything but an api() GET, which is never shared.
  digests bytea[];
  new_positions int[];
  ids bigint[];
  -- The request a single input inserts.
  new_id bigint;
  queue_limit int;
  queued int;
  -- What a dispatch notification carries: what the new requests share, [role, stream, server,
  -- timeout_ms, use_worker_default, cacert], then the requests, [id, method, path] each.
  dispatch_head jsonb;
  dispatch jsonb;
  -- Whether they may be announced whole, and the bytes their requests take in the announcement.
  dispatchable boolean;
  announced_size int;
  -- Where they are announced whole; NULL: on omni_kube_request, to be claimed.
  dispatch_channel text;
  -- The instance setting dispatch_channel.
  channel_setting text;
begin
  if cardinality(paths) = 1 then
    digests := array[omni_kube._request_digest(kind, methods[1], paths[1], stream, server,
                                               credentials_digest, clusters[1])];
    -- One input (every api() of one path): its own request if this is a retry, else the one it
    -- shares, found in one lookup; otherwise it is new. (The batch's statements below sort and
    -- aggregate, which costs a single call more than its insert.)
    ids := array(
      select r.id from omni_kube.request r
       where r.enqueue_key = _insert_requests.enqueue_key
          or (r.backend_pid = _insert_requests.backend_pid
              and r.statement_started = _insert_requests.statement_started
              and r.digest = digests[1]
              and r.requested_by = _insert_requests.requested_by)
       order by r.enqueue_key = _insert_requests.enqueue_key desc, r.id
       limit 1);
    if cardinality(ids) = 1 then
      return to_jsonb(ids);
    end if;
    new_positions := '{1}';
  else
    digests := array(
      select omni_kube._request_digest(kind, methods[i], paths[i], stream, server,
                                       credentials_digest, clusters[i])
        from generate_subscripts(paths, 1) i order by i);
    -- Inputs that need a request of their own, unless this is a retry: not a GET, or the first of
    -- its digest in the batch with no earlier request of the statement to share.
    if not exists (
         select from omni_kube.request r where r.enqueue_key = _insert_requests.enqueue_key) then
      new_positions := array(
        select x.i from (
          select i, digests[i] as digest, row_number() over (partition by digests[i] order by i) as nth
            from generate_subscripts(paths, 1) i) x
         where x.digest is null
            or (x.nth = 1 and not exists (
                  select from omni_kube.request r
                   where r.backend_pid = _insert_requests.backend_pid
                     and r.statement_started = _insert_requests.statement_started
                     and r.digest = x.digest
                     and r.requested_by = _insert_requests.requested_by))
         order by x.i);
    end if;
  end if;
  if cardinality(new_positions) > 0 then
    select (max(s.value) filter (where s.name = 'role_queue_limit'))::int,
           max(s.value) filter (where s.name = 'dispatch_channel')
      into queue_limit, channel_setting
      from omni_kube.instance_settings s
     where s.name in ('role_queue_limit', 'dispatch_channel');
    if queue_limit is not null then
      -- A large batch counts and inserts under its role's lock, so that two of them cannot
      -- pass the limit together; small ones go past it by at most their own size. The count
      -- reads the role's entries of request_queued_by_role, and stops at the limit.
      if cardinality(new_positions) >= 100 then
        perform pg_advisory_xact_lock(omni_kube._role_lock_class(),
          omni_kube._role_lock_key(_insert_requests.requested_by, omni_kube._lock_salt()));
      end if;
      select count(*) into queued from (
        select from omni_kube.request r
         where r.state = 'queued' and r.kind in ('api', 'watch')
           and r.requested_by = _insert_requests.requested_by
         limit queue_limit) q;
      if queued + cardinality(new_positions) > queue_limit then
        raise exception 'omni_kube: role % has % requests queued; % more would pass its limit of %',
          _insert_requests.requested_by,
          queued || case when queued >= queue_limit then ' or more' else '' end,
          cardinality(new_positions), queue_limit
          using errcode = 'OKL03', detail = 'Nothing was enqueued.',
            hint = 'Wait for queued requests to finish, or send fewer at once. The limit is the worker setting --role-queue-limit (OMNI_KUBE_ROLE_QUEUE_LIMIT).';
      end if;
    end if;
    -- Requests that carry no secret (the worker's own credentials, or none: a CA is public) and
    -- change nothing when sent twice travel whole to the workers, and the one holding a
    -- request's lock runs it at once; the rest are claimed. (The size allows for the longest
    -- ids and for escapes in the paths: a notification's payload stays under 8000 bytes.) A
    -- named cluster's request is claimed: only the workers that serve it may run it.
    if kind = 'api' and token is null and client_certificate is null
       and client_private_key is null then
      -- (One input is tested with scalar expressions, which PL/pgSQL evaluates without starting a
      -- statement; the subqueries cost a single call a tenth of its enqueue.)
      if cardinality(paths) = 1 then
        dispatchable := clusters[1] is null and methods[1] in ('GET', 'HEAD') and bodies[1] is null;
        announced_size := 2 * octet_length(paths[1]) + 40;
      else
        dispatchable := not exists (select from unnest(clusters) c where c is not null)
          and not exists (select from unnest(new_positions) p
                           where methods[p] not in ('GET', 'HEAD') or bodies[p] is not null);
        announced_size := (select sum(2 * octet_length(paths[p]) + 40) from unnest(new_positions) p);
      end if;
      if dispatchable then
        dispatch_head := jsonb_build_array(requested_by, stream, server, timeout_ms,
                                           use_worker_default, cacert);
        if octet_length(dispatch_head::text) + announced_size <= 7900 then
          dispatch_channel := channel_setting;
        end if;
      end if;
    end if;
    if cardinality(paths) = 1 then
      -- The batch's statement below, for one request: its plan (a function scan, a sort, a CTE and
      -- an aggregate) cost a single call more to start than the insert itself.
      insert into omni_kube.request (kind, method, path, body, stream, patch_type, server,
                                     timeout_ms, position, requested_by, session_role,
                                     backend_pid, enqueue_key, statement_started, digest,
                                     dispatched, cluster)
        values (kind, methods[1], paths[1], bodies[1], stream, patch_type, server, timeout_ms, 1,
                requested_by, session_role, backend_pid, enqueue_key, statement_started,
                digests[1], dispatch_channel is not null, clusters[1])
        returning id into new_id;
      insert into omni_kube.request_credentials
        values (new_id, use_worker_default, cacert, client_certificate, client_private_key, token);
      perform pg_notify(coalesce(dispatch_channel, 'omni_kube_request'),
                        case when dispatch_channel is not null
                             then (dispatch_head || jsonb_build_array(jsonb_build_array(
                                     jsonb_build_array(new_id, methods[1], paths[1]))))::text
                             else '' end);
      return jsonb_build_array(new_id);
    end if;
    with inserted as (
      insert into omni_kube.request (kind, method, path, body, stream, patch_type, server,
                                     timeout_ms, position, requested_by, session_role,
                                     backend_pid, enqueue_key, statement_started, digest,
                                     dispatched, cluster)
        select kind, methods[p], paths[p], bodies[p], stream, patch_type, server, timeout_ms, p,
               requested_by, session_role, backend_pid, enqueue_key, statement_started, digests[p],
               dispatch_channel is not null, clusters[p]
          from unnest(new_positions) p
         order by p
      returning id, method, path),
    credentials as (
      insert into omni_kube.request_credentials
        select id, use_worker_default, cacert, client_certificate, client_private_key, token
          from inserted),
    announced as (
      select jsonb_agg(jsonb_build_array(i.id, i.method, i.path) order by i.id) as requests
        from inserted i)
    select a.requests into dispatch
      from announced a
     cross join lateral pg_notify(coalesce(dispatch_channel, 'omni_kube_request'),
                                  case when dispatch_channel is not null
                                       then (dispatch_head || jsonb_build_array(a.requests))::text
                                       else '' end) notified;
  end if;
  -- Each input's request: its own, else the earliest of the statement with its digest.
  select array_agg(coalesce(own.id, shared.id) order by i) into ids
    from generate_subscripts(paths, 1) i
    left join (select r.id, r.position from omni_kube.request r
                where r.enqueue_key = _insert_requests.enqueue_key) own on own.position = i
    left join lateral (
      select r.id from omni_kube.request r
       where own.id is null
         and r.backend_pid = _insert_requests.backend_pid
         and r.statement_started = _insert_requests.statement_started
         and r.digest = digests[i]
         and r.requested_by = _insert_requests.requested_by
       order by r.id limit 1) shared on true;
  return to_jsonb(ids);
end
$$;
revoke all on function omni_kube._insert_requests from public;
