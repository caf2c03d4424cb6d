-- Creates (or replaces) the view and its trigger; discovery already done. A view of a named
-- cluster names it in its query and its trigger's arguments; `cluster` NULL: none, and the view
-- reads and writes with the querying session's settings.
create or replace function omni_kube._create_resource_view(
  schema name, view_name name, group_version text, resource text, kind text, namespaced boolean,
  label_selector text, field_selector text, cluster text
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
begin
  execute format($view$
    create or replace view %I.%I as
      select r #>> '{metadata,uid}' as uid,
             r #>> '{metadata,name}' as name,
             r #>> '{metadata,namespace}' as namespace,
             r as resource
        from omni_kube.resources(%L, %L, %slabel_selector => %L, field_selector => %L) r
    $view$, schema, view_name, group_version, resource,
    case when cluster is not null then format('cluster => %L, ', cluster) else '' end,
    label_selector, field_selector);
  execute format($trigger$
    create or replace trigger omni_kube_write instead of insert or update or delete on %I.%I
      for each row execute function omni_kube._resource_view_write(%L, %L, %L, %L, %L%s)
    $trigger$, schema, view_name, group_version, resource, kind, namespaced,
    omni_kube._default_namespace(field_selector),
    case when cluster is not null then format(', %L', cluster) else '' end);
  return format('%I.%I', schema, view_name)::regclass;
end
$$;
