-- Deletes an object; one that is already gone counts as deleted.
create or replace function omni_kube._delete_object(path text) returns void
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube.api(path, method => 'DELETE');
exception when sqlstate 'OK404' then
  null;
end
$$;
