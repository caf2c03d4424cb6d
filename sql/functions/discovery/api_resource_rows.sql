-- The rows of an APIResourceList (the answer of GET /api/v1 or /apis/GROUP/VERSION).
create or replace function omni_kube._api_resource_rows(list jsonb)
  returns table (name text, singular_name text, namespaced boolean, kind text, verbs text[],
                 storage_version_hash text)
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select r ->> 'name', coalesce(r ->> 'singularName', ''), (r ->> 'namespaced')::boolean,
           r ->> 'kind', array(select jsonb_array_elements_text(coalesce(r -> 'verbs', '[]'))),
           r ->> 'storageVersionHash'
      from jsonb_array_elements(list -> 'resources') r
  $$;
