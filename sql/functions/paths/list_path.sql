-- The list path of a resource with its selectors. A field selector term metadata.namespace=NAME
-- becomes the namespaced path: kube-apiserver (1.33) narrows such a list to the namespace itself,
-- but its first continue token then restarts the listing, returning the first page twice.
create or replace function omni_kube._list_path(group_version text, resource text, label_selector text,
                                     field_selector text, namespace text)
  returns text
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube.path_with(omni_kube.resources_path(group_version, resource, t.namespace),
                               label_selector, t.rest)
      from (select coalesce(_list_path.namespace, n.namespace) as namespace,
                   case when _list_path.namespace is null then n.rest else field_selector end as rest
              from omni_kube._namespace_term(field_selector) n) t
  $$;
