-- omni_kube.cluster_resources(clusters, group_version, resource, ...): every object of a resource
-- in each of several named clusters, listed in parallel (one batch of calls per page round), with
-- the cluster it came from. '{*}': every cluster the caller may use that a live worker serves
-- (omni_kube.clusters). A NULL among the names is the worker's default cluster, as for api().
-- (The column is `object`: the parameter `resource` takes the name.)

create or replace function omni_kube.cluster_resources(
  clusters text[],
  group_version text,
  resource text,
  label_selector text default null,
  field_selector text default null,
  namespace text default null
) returns table (cluster text, object jsonb)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  path constant text := omni_kube._list_path(group_version, resource, label_selector,
                                             field_selector, namespace);
  chosen text[];
begin
  if clusters is null then
    raise exception 'omni_kube: clusters must not be NULL'
      using errcode = '22004', hint = 'Name the clusters, or give ''{*}'' for every cluster you may use.';
  end if;
  if array_ndims(clusters) > 1 then
    raise exception 'omni_kube: clusters must be a one-dimensional array' using errcode = '2202E';
  end if;
  if '*' = any (clusters) then
    if cardinality(clusters) > 1 then
      raise exception 'omni_kube: ''*'' stands for every cluster; give it alone'
        using errcode = '22023', hint = 'clusters => ''{*}'', or the names of the clusters.';
    end if;
    chosen := array(select c.name from omni_kube.clusters c
                     where c.granted and cardinality(c.workers) > 0 order by c.name);
  else
    -- Each cluster once, in the order given.
    chosen := array(select u.c from unnest(clusters) with ordinality u(c, n)
                     group by u.c order by min(u.n));
  end if;
  if cardinality(chosen) = 0 then
    return;
  end if;
  return query
    select chosen[l.path_index], l.object
      from omni_kube._list_collections(array_fill(path, array[cardinality(chosen)]),
                                       clusters => chosen) with ordinality l(path_index, object, n)
     order by l.path_index, l.n;
end
$$;

grant execute on function omni_kube.cluster_resources(text[], text, text, text, text, text) to omni_kube;
