-- A plain (unquoted) scalar typed as YAML 1.2's core schema does: null, booleans, decimal numbers;
-- everything else stays a string (0x1F, .5, .inf, 2024-01-01, yes and no too).
create or replace function omni_kube._yaml_plain(value text) returns jsonb
  language sql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
    select case
      when value in ('', '~', 'null', 'Null', 'NULL') then 'null'::jsonb
      when value in ('true', 'True', 'TRUE') then 'true'::jsonb
      when value in ('false', 'False', 'FALSE') then 'false'::jsonb
      -- No leading zeros: 0123 stays the string it probably is.
      when length(value) <= 1000 and value ~ '^[-+]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$'
        then to_jsonb(value::numeric)
      else to_jsonb(value)
    end
  $$;
revoke all on function omni_kube._yaml_plain(text) from public;
grant execute on function omni_kube._yaml_plain(text) to omni_kube;
