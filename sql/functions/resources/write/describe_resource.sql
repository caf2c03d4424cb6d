-- What discovery says about one resource; raises, listing the alternatives, when it is not served.
-- `cluster` NULL: the caller's settings.
create or replace function omni_kube._describe_resource(group_version text, resource text,
                                                        cluster text, out kind text,
                                                        out namespaced boolean)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  verbs text[];
begin
  select r.kind, r.namespaced, r.verbs into kind, namespaced, verbs
    from omni_kube._group_resources(group_version, cluster) r
   where r.name = resource;
  if not found then
    raise exception 'omni_kube: group version % has no resource "%"%', group_version, resource,
                    coalesce(' on cluster "' || cluster || '"', '')
      using errcode = '22023',
        hint = 'It serves: ' || (select string_agg(r.name, ', ' order by r.name)
                                   from omni_kube._group_resources(group_version, cluster) r
                                  where r.name !~ '/') || '.';
  end if;
  if not 'list' = any (verbs) then
    raise exception 'omni_kube: % % cannot be listed', group_version, resource
      using errcode = '22023', hint = 'Only resources with the list verb can back a view or table.';
  end if;
end
$$;
