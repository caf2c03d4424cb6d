-- Folds the line breaks of a multi-line flow scalar: whitespace around a break goes, a single
-- break becomes a space, and n breaks in a row become n - 1 newlines.
create or replace function omni_kube._yaml_fold(body text) returns text
  language sql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
    select regexp_replace(
             regexp_replace(regexp_replace(body, '[ \t]*\n[ \t]*', E'\n', 'g'),
                            '(^|[^\n])\n(?=[^\n]|$)', '\1 ', 'g'),
             '\n(\n*)', '\1', 'g')
  $$;
revoke all on function omni_kube._yaml_fold(text) from public;
grant execute on function omni_kube._yaml_fold(text) to omni_kube;
