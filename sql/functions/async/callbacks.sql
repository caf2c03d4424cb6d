-- Callbacks (api_async's on_done): a member's function (id bigint, status int2, response jsonb),
-- called once per request after its result is recorded, in a transaction of its own, with the
-- rights of the role that made the request and never the worker's.

-- Refuses a callback that cannot be called so, or that `member` may not execute.
create or replace function omni_kube._check_callback(callback regprocedure, member name)
  returns void
  language plpgsql stable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not exists (select from pg_proc p
                  where p.oid = callback and p.prokind = 'f'
                    and p.pronargs = 3 and p.proargtypes[0] = 'bigint'::regtype
                    and p.proargtypes[1] = 'smallint'::regtype
                    and p.proargtypes[2] = 'jsonb'::regtype) then
    raise exception 'omni_kube: callback % must be a function of (bigint, smallint, jsonb)', callback
      using errcode = '42883',
        hint = 'Declare it as: create function f(id bigint, status smallint, response jsonb) returns void ...; and pass on_done => ''f(bigint, smallint, jsonb)''.';
  end if;
  if not has_function_privilege(member, callback, 'EXECUTE') then
    raise exception 'omni_kube: role % may not execute callback %', member, callback
      using errcode = '42501';
  end if;
end
$$;
revoke all on function omni_kube._check_callback(regprocedure, name) from public;

-- The function through which `member`'s callbacks are called: SECURITY DEFINER and owned by the
-- member (SET ROLE is refused inside it, so a callback cannot take the worker's role back), in a
-- schema nobody else may use; made when first needed. Returns its name.
create or replace function omni_kube._async_caller(member name) returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  member_oid constant oid := (select oid from pg_roles where rolname = member);
  caller constant text := format('omni_kube_async.%I', 'call_' || member_oid);
begin
  if member_oid is null then
    raise exception 'omni_kube: role % no longer exists', member using errcode = '42704';
  end if;
  if not exists (select from pg_proc p
                  where p.oid = to_regprocedure(caller || '(regprocedure, bigint, smallint, jsonb)')
                    and p.prosecdef and p.proowner = member_oid) then
    execute format($f$
      create or replace function %s(callback regprocedure, id bigint, status smallint,
                                    response jsonb) returns void
        language plpgsql volatile security definer
        -- The search_path a session of the member's would have.
        set search_path = "$user", public, pg_temp
        as $body$
      declare
        -- Named in full: nothing on the search_path above can stand in for it.
        qualified text := (select format('%%I.%%I', n.nspname, p.proname)
                             from pg_catalog.pg_proc p
                             join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                            where p.oid = callback);
      begin
        execute format('select %%s($1, $2, $3)', qualified) using id, status, response;
        set constraints all immediate;
      end
      $body$
    $f$, caller);
    execute format('alter function %s(regprocedure, bigint, smallint, jsonb) owner to %I',
                   caller, member);
    execute format('revoke all on function %s(regprocedure, bigint, smallint, jsonb) from public',
                   caller);
  end if;
  return caller;
end
$$;
revoke all on function omni_kube._async_caller(name) from public;

-- Calls a callback through the caller of the session's role, which the worker sets to the role
-- that made the request: that role could not reach its caller's schema; this function can, for
-- the workers' sessions only.
create or replace function omni_kube._async_invoke(callback regprocedure, id bigint, status int2,
                                                   response jsonb) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if session_user <> (select nspowner::regrole::name from pg_namespace where nspname = 'omni_kube') then
    raise exception 'omni_kube: only the workers run callbacks' using errcode = '42501';
  end if;
  execute format('select omni_kube_async.%I($1, $2, $3, $4)',
                 'call_' || (select oid from pg_roles where rolname = omni_kube._session_role()))
    using callback, id, status, response;
end
$$;
grant execute on function omni_kube._async_invoke(regprocedure, bigint, int2, jsonb) to public;

-- Runs the oldest pending callback no other session is running, and records its outcome (done,
-- or failed with the error, its effects rolled back) in the same transaction. Returns the
-- request's id, NULL when none is pending. The worker calls it in a session of its own, each
-- time in a transaction of its own, and discards the session's state after each.
create or replace function omni_kube._async_run_callback() returns bigint
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  request omni_kube.async_request;
  leftover text;
begin
  select * into request from omni_kube.async_request r
   where r.callback_state = 'pending'
   order by r.id limit 1 for update skip locked;
  if not found then
    return null;
  end if;
  begin
    if not exists (select from pg_proc where oid = request.on_done) then
      raise exception 'the callback function (oid %) no longer exists', request.on_done::oid
        using errcode = '42883';
    end if;
    perform omni_kube._async_caller(request.requested_by);
    perform set_config('role', request.requested_by, true);
    perform omni_kube._async_invoke(request.on_done, request.id, request.status, request.response);
    perform set_config('role', 'none', true);
    -- A cursor WITH HOLD declared by the callback would run the rest of its query at commit.
    execute 'close all';
    leftover := omni_kube._deferred_escape(request.requested_by);
    if leftover is not null then
      raise exception 'deferrable trigger % would run at commit, outside the rights of %',
                      leftover, request.requested_by
        using errcode = 'OKV03', hint = 'Make that trigger NOT DEFERRABLE.';
    end if;
    update omni_kube.async_request
       set callback_state = 'done', callback_error = null, callback_at = clock_timestamp()
     where id = request.id;
  exception when others then
    update omni_kube.async_request
       set callback_state = 'failed', callback_at = clock_timestamp(),
           callback_error = format('%s (SQLSTATE %s)', sqlerrm, sqlstate)
     where id = request.id;
  end;
  return request.id;
end
$$;
revoke all on function omni_kube._async_run_callback() from public;
