-- Refreshes several tables, listing all their collections in parallel. `clusters`: each table's
-- named cluster; NULL (as the refresh functions of tables without one call it): the settings.
create or replace function omni_kube._refresh_resource_tables(tables text[], paths text[],
                                                              clusters text[] default null)
  returns table (resource_table regclass, type text, object jsonb)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  indexes int[];
  objects jsonb[];
begin
  for i in 1 .. cardinality(tables) loop
    if omni_kube._pending_exists(tables[i]::regclass) then
      raise exception 'omni_kube: % has changes waiting for this transaction''s commit', tables[i]::regclass
        using errcode = '55000', hint = 'Commit or roll back before refreshing it.';
    end if;
  end loop;
  select array_agg(l.path_index), array_agg(l.object) into indexes, objects
    from omni_kube._list_collections(paths, clusters => clusters) l;
  for i in 1 .. cardinality(tables) loop
    return query
      select tables[i]::regclass, m.type, m.object
        from omni_kube._merge_resource_table(tables[i]::regclass,
               array(select u.object from unnest(indexes, objects) u(path_index, object)
                      where u.path_index = i)) m;
  end loop;
end
$$;
