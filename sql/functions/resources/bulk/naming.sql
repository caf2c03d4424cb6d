-- How resource_views() and resource_tables() name what they create.

-- A kind in snake case.
create or replace function omni_kube._snake_case(word text) returns text
  language sql immutable strict set search_path = pg_catalog, pg_temp
  as $$
    -- ConfigMap -> config_map, CSIDriver -> csi_driver, APIService -> api_service
    select lower(regexp_replace(regexp_replace(word, '([a-z0-9])([A-Z])', '\1_\2', 'g'),
                                '([A-Z])([A-Z][a-z])', '\1_\2', 'g'))
  $$;

-- The plural resource name with the word breaks of its kind: (networkpolicies, NetworkPolicy) ->
-- network_policies. Follows the kind's snake case while it matches the plural, then the plural.
create or replace function omni_kube._plural_snake_case(plural text, kind text) returns text
  language plpgsql immutable strict set search_path = pg_catalog, pg_temp
  as $$
declare
  snake text := omni_kube._snake_case(kind);
  result text := '';
  i int := 1;
  j int := 1;
begin
  while i <= length(snake) loop
    if substr(snake, i, 1) = '_' then
      if j <= length(plural) then
        result := result || '_';
      end if;
      i := i + 1;
    elsif substr(snake, i, 1) = substr(plural, j, 1) then
      result := result || substr(plural, j, 1);
      i := i + 1;
      j := j + 1;
    else
      exit;
    end if;
  end loop;
  return result || substr(plural, j);
end
$$;

-- The name of the view or table of a resource, by the naming options of resource_views/_tables.
create or replace function omni_kube._resource_object_name(resource text, singular_name text, kind text,
                                                singular boolean, underscore_case boolean)
  returns name
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select case when singular and underscore_case then omni_kube._snake_case(kind)
                when singular then coalesce(nullif(singular_name, ''), lower(kind))
                when underscore_case then omni_kube._plural_snake_case(resource, kind)
                else resource end
  $$;
