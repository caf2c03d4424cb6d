-- A live table's state for await_live(), if the caller's role may see the table (owns it, or is a
-- member of its owner); NULL state otherwise. Under REPEATABLE READ and SERIALIZABLE the caller's
-- snapshot never changes, so the row is read through the autonomous connection.
create or replace function omni_kube._live_state(live regclass, out state text, out last_error text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  caller constant name := omni_kube._session_role();
  found jsonb;
begin
  if current_setting('transaction_isolation') <> 'read committed' then
    found := omni_kube._autonomous(format(
      'select to_jsonb(s) from omni_kube._live_state_of(%s::oid, %L) s', live::oid, caller));
    state := found ->> 'state';
    last_error := found ->> 'last_error';
    return;
  end if;
  select s.state, s.last_error into state, last_error from omni_kube._live_state_of(live, caller) s;
  -- Made by this very transaction: no worker sees it before it commits.
  if state is not null and exists (
       select from omni_kube.live_registry l
        where l.relation = live
          and l.xmin::text::bigint = pg_current_xact_id_if_assigned()::text::bigint % 4294967296) then
    state := 'uncommitted';
  end if;
end
$$;
revoke all on function omni_kube._live_state(regclass) from public;
grant execute on function omni_kube._live_state(regclass) to omni_kube;

-- The state of live table `live` as `caller` may see it: `stopped` while no live worker mirrors
-- it. No row when it is not a live table or not the caller's to see. (Only the owner calls it:
-- through _live_state, directly or over the autonomous connection.)
create or replace function omni_kube._live_state_of(live oid, caller name)
  returns table (state text, last_error text)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select case when l.worker_id is null or not omni_kube._worker_alive(l.worker_id) then 'stopped'
                else l.state end,
           l.last_error
      from omni_kube.live_registry l join pg_class c on c.oid = l.relation
     where l.relation = live and pg_has_role(caller, c.relowner, 'USAGE')
  $$;
revoke all on function omni_kube._live_state_of(oid, name) from public;

-- omni_kube.await_live(live, timeout): returns once the table is live (its first sync done);
-- raises with the last error after `timeout` seconds.
create or replace function omni_kube.await_live(live regclass, timeout int default 30)
  returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  deadline constant timestamptz := clock_timestamp() + make_interval(secs => coalesce(timeout, 30));
  found record;
begin
  loop
    select * into found from omni_kube._live_state(live);
    if found.state is null then
      raise exception 'omni_kube: % is not a live table of yours', live
        using errcode = '42704',
          hint = 'omni_kube.live_tables lists yours; a table made by live_table() is seen once its transaction commits.';
    end if;
    if found.state = 'live' then
      return;
    end if;
    if found.state = 'uncommitted' then
      raise exception 'omni_kube: live table % was made in this transaction, which no worker sees before it commits',
                      live
        using errcode = '55000', hint = 'Commit first, then call await_live().';
    end if;
    if clock_timestamp() >= deadline then
      raise exception 'omni_kube: live table % is not live after % s (it is %)', live,
                      coalesce(timeout, 30), found.state
        using errcode = 'OKT02',
          detail = coalesce('last error: ' || found.last_error, 'no error so far'),
          hint = case found.state when 'stopped' then 'No live worker mirrors it: start one.'
                 else 'omni_kube.live_tables shows its state; the worker''s log says more.' end;
    end if;
    perform pg_sleep(0.02);
  end loop;
end
$$;
grant execute on function omni_kube.await_live(regclass, int) to omni_kube;
