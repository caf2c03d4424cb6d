-- omni_kube.resource_view(view_name, group_version, resource, ...): a view of the objects of one
-- resource, read live from the cluster on every query. INSERT creates objects (generateName works;
-- RETURNING shows what the server created), UPDATE replaces them, DELETE deletes them.

-- What discovery says about one resource; raises, listing the alternatives, when it is not served.
create function omni_kube._describe_resource(group_version text, resource text,
                                             out kind text, out namespaced boolean)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  verbs text[];
begin
  select r.kind, r.namespaced, r.verbs into kind, namespaced, verbs
    from omni_kube.group_resources(group_version) r
   where r.name = resource;
  if not found then
    raise exception 'omni_kube: group version % has no resource "%"', group_version, resource
      using errcode = '22023',
        hint = 'It serves: ' || (select string_agg(r.name, ', ' order by r.name)
                                   from omni_kube.group_resources(group_version) r
                                  where r.name !~ '/') || '.';
  end if;
  if not 'list' = any (verbs) then
    raise exception 'omni_kube: % % cannot be listed', group_version, resource
      using errcode = '22023', hint = 'Only resources with the list verb can back a view or table.';
  end if;
end
$$;

-- Where views and tables go: the schema given, created when missing.
create function omni_kube._target_schema(schema name) returns name
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
begin
  if schema is null then
    raise exception 'omni_kube: no schema to create in'
      using errcode = '3F000',
        hint = 'Name one with schema => ..., or put an existing schema first in search_path.';
  end if;
  -- CREATE SCHEMA IF NOT EXISTS would demand CREATE on the database even when the schema exists.
  if not exists (select from pg_namespace where nspname = schema) then
    execute format('create schema %I', schema);
  end if;
  return schema;
end
$$;

-- Where objects written without a namespace go: the namespace a view or table is restricted to by
-- its field selector, else "default", as kubectl does.
create function omni_kube._default_namespace(field_selector text) returns text
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$ select coalesce((omni_kube._namespace_term(field_selector)).namespace, 'default') $$;

-- INSTEAD OF INSERT / UPDATE / DELETE on a resource view.
-- Arguments: group version, resource, kind, namespaced, default namespace.
create function omni_kube._resource_view_write() returns trigger
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  request omni_kube.resource_request := omni_kube._resource_request(
    tg_op, tg_argv[0], tg_argv[1], tg_argv[2], tg_argv[3]::boolean, tg_argv[4], to_jsonb(old),
    to_jsonb(new));
  result jsonb;
begin
  result := omni_kube._send(request);
  if tg_op = 'DELETE' then
    return old;
  end if;
  select * into new.uid, new.name, new.namespace from omni_kube._object_columns(result);
  new.resource := result;
  return new;
end
$$;

-- Creates (or replaces) the view and its trigger; discovery already done.
create function omni_kube._create_resource_view(
  schema name, view_name name, group_version text, resource text, kind text, namespaced boolean,
  label_selector text, field_selector text
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
        from omni_kube.resources(%L, %L, label_selector => %L, field_selector => %L) r
    $view$, schema, view_name, group_version, resource, label_selector, field_selector);
  execute format($trigger$
    create or replace trigger omni_kube_write instead of insert or update or delete on %I.%I
      for each row execute function omni_kube._resource_view_write(%L, %L, %L, %L, %L)
    $trigger$, schema, view_name, group_version, resource, kind, namespaced,
    omni_kube._default_namespace(field_selector));
  return format('%I.%I', schema, view_name)::regclass;
end
$$;

create function omni_kube.resource_view(
  view_name name,
  group_version text,
  resource text,
  label_selector text default null,
  field_selector text default null,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema()
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  description record := omni_kube._describe_resource(group_version, resource);
begin
  return omni_kube._create_resource_view(omni_kube._target_schema(schema), view_name, group_version,
                                         resource, description.kind, description.namespaced,
                                         label_selector, field_selector);
end
$$;

grant execute on function omni_kube.resource_view(name, text, text, text, text, name) to omni_kube;
