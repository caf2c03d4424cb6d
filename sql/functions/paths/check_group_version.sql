-- Raises unless `group_version` reads as v1 or GROUP/VERSION.
create or replace function omni_kube._check_group_version(group_version text) returns void
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  if group_version is null or group_version !~ '^([a-z0-9.-]+/)?v[0-9]+[a-z0-9]*$' then
    raise exception 'omni_kube: "%" is not a group version', group_version
      using errcode = '22023', hint = 'Use v1 for the core group, or GROUP/VERSION such as apps/v1.';
  end if;
end
$$;
