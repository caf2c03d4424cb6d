-- The trigger that keeps members' writes off a live table: its rows are the cluster's objects, and
-- only its worker's apply (omni_kube._live_apply, which sets omni_kube.live_applying for its own
-- transaction) writes them. A write here would be undone by the next event or relist anyway.
create or replace function omni_kube._live_guard() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if current_setting('omni_kube.live_applying', true) = 'on' then
    return case when tg_op = 'DELETE' then old else new end;
  end if;
  raise exception 'omni_kube: % is a live table; its rows mirror the cluster and only its worker writes them',
                  tg_relid::regclass
    using errcode = 'OKV01',
      hint = 'Change the objects in the cluster instead, with omni_kube.api() or a resource_view(): the table follows within moments.';
end
$$;
grant execute on function omni_kube._live_guard() to omni_kube;
