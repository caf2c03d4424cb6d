-- Deletes an object; one that is already gone counts as deleted. `cluster` NULL: the caller's
-- settings.
create or replace function omni_kube._delete_object(path text, cluster text) returns void
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube.api(path, cluster => cluster, method => 'DELETE');
exception when sqlstate 'OK404' then
  null;
end
$$;
