-- Transition: running -> done (an HTTP answer: its status and body) or failed (no answer: the
-- error, and the SQLSTATE its caller gets, NULL for OKT01), for the requests of `ids` that
-- `worker` is running; any other is left as it is (its caller cancelled it meanwhile). One element
-- per request in each array. A body said to be JSON is cast to jsonb, which fails the whole
-- statement if one is not JSON after all (or not storable as jsonb); `tolerant` stores such a body
-- as a JSON string instead, at the price of a subtransaction per row. `stored` marks a response
-- assembled in the row already (large bodies). With `announce`, tells the finished ids on
-- omni_kube_done, so that other workers release their window locks on them (a NOTIFY payload must
-- stay under 8000 bytes: many say "*", sweep); a worker that holds the locks of all of them itself
-- has nothing to tell. `unclaimed` are dispatched requests (_insert_requests) that `worker` ran
-- before any claim of them committed: they are finished from queued too, and claimed by the same
-- statement.
create or replace function omni_kube._finish_requests(
  worker uuid, ids bigint[], statuses int2[], bodies text[], is_json boolean[], stored boolean[],
  errors text[], error_codes text[], tolerant boolean default false, announce boolean default true,
  unclaimed bigint[] default '{}'
) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- Its statement takes arrays, whose length a generic plan cannot know: left to choose,
  -- PostgreSQL planned it anew on every call, a third of the queue session's CPU. Its reads are
  -- by primary key at any size.
  set plan_cache_mode = force_generic_plan
  as $$
declare
  finished int;
  finished_ids text;
  now constant timestamptz := clock_timestamp();
begin
  if cardinality(ids) = 1 then
    -- The statement below, for one request: its plan (a function scan of seven arrays, a join and
    -- two CTEs) cost a single call about as much as the update itself.
    update omni_kube.request r
       set state = case when errors[1] is null then 'done' else 'failed' end::omni_kube.request_state,
           status = statuses[1],
           response = case when stored[1] then r.response
                           when tolerant then omni_kube._response_jsonb(bodies[1], is_json[1])
                           when bodies[1] is null or bodies[1] = '' then null
                           when is_json[1] then bodies[1]::jsonb
                           else to_jsonb(bodies[1]) end,
           error = errors[1],
           error_code = error_codes[1],
           worker_id = worker,
           claimed_at = coalesce(r.claimed_at, now),
           finished_at = now
     where r.id = ids[1]
       and ((r.state = 'running' and r.worker_id = worker)
            or (r.state = 'queued' and r.dispatched and r.id = any(unclaimed)));
    if found then
      if ids[1] = any(unclaimed) then
        delete from omni_kube.request_credentials c where c.request_id = ids[1];
      end if;
      if announce then
        perform pg_notify('omni_kube_done', ids[1]::text);
      end if;
    end if;
    return;
  end if;
  with written as (
    update omni_kube.request r
       set state = case when x.error is null then 'done' else 'failed' end::omni_kube.request_state,
           status = x.status,
           response = case when x.stored then r.response
                           when tolerant then omni_kube._response_jsonb(x.body, x.is_json)
                           when x.body is null or x.body = '' then null
                           when x.is_json then x.body::jsonb
                           else to_jsonb(x.body) end,
           error = x.error,
           error_code = x.error_code,
           worker_id = worker,
           claimed_at = coalesce(r.claimed_at, now),
           finished_at = now
      from unnest(ids, statuses, bodies, is_json, stored, errors, error_codes)
             as x(id, status, body, is_json, stored, error, error_code)
     where r.id = x.id
       and ((r.state = 'running' and r.worker_id = worker)
            or (r.state = 'queued' and r.dispatched and r.id = any(unclaimed)))
    returning r.id
  ), forgotten as (
    -- (A dispatched request's credentials row holds no secret; a claim would have deleted it.)
    delete from omni_kube.request_credentials c
     where c.request_id = any(unclaimed) and c.request_id in (select id from written)
  )
  select count(*), string_agg(id::text, ',') into finished, finished_ids from written;
  if finished > 0 and announce then
    perform pg_notify('omni_kube_done', case when finished <= 400 then finished_ids else '*' end);
  end if;
end
$$;
revoke all on function omni_kube._finish_requests(uuid, bigint[], int2[], text[], boolean[],
  boolean[], text[], text[], boolean, boolean, bigint[]) from public;
