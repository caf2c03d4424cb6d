-- The caller gives up on the unfinished of `ids` (timeout, cancelled statement, no worker): they
-- are cancelled through the autonomous connection, so that the cancellation commits whatever
-- becomes of the caller's transaction.
create or replace function omni_kube._abandon(ids bigint[], reason text) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._autonomous(format('select omni_kube._cancel_requests(%L, %L)', ids, reason));
end
$$;
revoke all on function omni_kube._abandon(bigint[], text) from public;

-- The form release 0.1.0's _await calls: a caller that began waiting before an upgrade to this
-- release still calls it when it gives up. It only ever passed 'cancelled'. To be retired once no
-- supported release upgrades from 0.1.0.
create or replace function omni_kube._abandon(ids bigint[], new_state omni_kube.request_state,
                                              reason text)
  returns void
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$ select omni_kube._abandon(ids, reason) $$;
revoke all on function omni_kube._abandon(bigint[], omni_kube.request_state, text) from public;
