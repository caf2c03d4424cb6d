-- Checks a row against the rules of Kubernetes and of the view (name and namespace agree with the
-- resource's metadata; uid is the server's; objects are never renamed) and builds the request:
-- POST for INSERT, PUT for UPDATE, DELETE for DELETE. The body gets apiVersion, kind, name and
-- namespace, so a row may give them in its columns only. A namespaced object without a namespace
-- goes to default_namespace: the one the view or table is restricted to, else "default".
create or replace function omni_kube._resource_request(
  operation text, group_version text, resource text, kind text, namespaced boolean,
  default_namespace text, old_row jsonb, new_row jsonb
) returns omni_kube.resource_request
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
declare
  what text := omni_kube._resource_label(group_version, kind);
  body jsonb := new_row -> 'resource';
  metadata jsonb;
  name text;
  namespace text;
  collection text;
begin
  if operation = 'DELETE' then
    name := coalesce(old_row ->> 'name', old_row #>> '{resource,metadata,name}');
    namespace := coalesce(old_row ->> 'namespace', old_row #>> '{resource,metadata,namespace}');
    if name is null then
      raise exception 'omni_kube: cannot delete a % without a name', what using errcode = '23502';
    end if;
    collection := omni_kube.resources_path(group_version, resource,
                                           case when namespaced then coalesce(namespace, default_namespace) end);
    return row('DELETE'::omni_kube.http_method, collection || '/' || omni_kube._url_encode(name), collection,
                null::jsonb, name, namespace);
  end if;

  if body is null or jsonb_typeof(body) <> 'object' then
    raise exception 'omni_kube: the resource of a % must be a JSON object, got %', what,
                    coalesce(jsonb_typeof(body), 'NULL')
      using errcode = '22023',
        hint = 'Set the resource column to the object, e.g. {"metadata": {"name": "example"}, ...}.';
  end if;
  if (body ? 'apiVersion' and body ->> 'apiVersion' is distinct from group_version)
     or (body ? 'kind' and body ->> 'kind' is distinct from kind) then
    raise exception 'omni_kube: this holds % objects, but the resource is a % %', what,
                    coalesce(body ->> 'apiVersion', group_version), coalesce(body ->> 'kind', kind)
      using errcode = '22023', hint = 'Leave apiVersion and kind out; they are filled in.';
  end if;
  metadata := coalesce(body -> 'metadata', '{}');
  if jsonb_typeof(metadata) <> 'object' then
    raise exception 'omni_kube: resource.metadata of a % must be a JSON object', what using errcode = '22023';
  end if;
  if operation = 'INSERT' and new_row ->> 'uid' is not null then
    raise exception 'omni_kube: uid is assigned by Kubernetes; leave it NULL when inserting a %', what
      using errcode = '22023';
  end if;
  if operation = 'UPDATE' and new_row ->> 'uid' is distinct from old_row ->> 'uid' then
    raise exception 'omni_kube: the uid of a % cannot change', what using errcode = '22023';
  end if;

  name := metadata ->> 'name';
  if new_row ->> 'name' is not null and name is not null and new_row ->> 'name' <> name then
    raise exception 'omni_kube: name (%) and resource.metadata.name (%) differ', new_row ->> 'name', name
      using errcode = '22023', hint = 'Give the name in one place, or the same name in both.';
  end if;
  name := coalesce(name, new_row ->> 'name');
  if name is null and (operation = 'UPDATE' or metadata ->> 'generateName' is null) then
    raise exception 'omni_kube: a % needs a name', what
      using errcode = '23502',
        hint = 'Set the name column or resource.metadata.name (or, to insert, resource.metadata.generateName).';
  end if;

  namespace := metadata ->> 'namespace';
  if namespaced then
    if new_row ->> 'namespace' is not null and namespace is not null and new_row ->> 'namespace' <> namespace then
      raise exception 'omni_kube: namespace (%) and resource.metadata.namespace (%) differ',
                      new_row ->> 'namespace', namespace
        using errcode = '22023', hint = 'Give the namespace in one place, or the same in both.';
    end if;
    namespace := coalesce(namespace, new_row ->> 'namespace', default_namespace);
  elsif coalesce(namespace, new_row ->> 'namespace') is not null then
    raise exception 'omni_kube: a % is cluster-scoped; it has no namespace (got %)', what,
                    coalesce(namespace, new_row ->> 'namespace')
      using errcode = '22023', hint = 'Leave namespace NULL.';
  end if;

  if operation = 'UPDATE' and (name is distinct from old_row ->> 'name'
                               or namespace is distinct from old_row ->> 'namespace') then
    raise exception 'omni_kube: a % cannot be renamed or moved (%/% to %/%)', what,
                    coalesce(old_row ->> 'namespace', ''), old_row ->> 'name', coalesce(namespace, ''), name
      using errcode = '22023', hint = 'Insert a copy under the new name, then delete the old one.';
  end if;

  body := body || jsonb_build_object('apiVersion', group_version, 'kind', kind, 'metadata',
            metadata || jsonb_strip_nulls(jsonb_build_object('name', name, 'namespace', namespace)));
  collection := omni_kube.resources_path(group_version, resource, namespace);
  if operation = 'INSERT' then
    return row('POST'::omni_kube.http_method, collection, collection, body, name, namespace);
  end if;
  return row('PUT'::omni_kube.http_method, collection || '/' || omni_kube._url_encode(name), collection, body, name, namespace);
end
$$;
