-- A server file's text, read with the caller's rights, errors as PostgreSQL raises them: callers
-- check the rights first and never pass an error on as it is (some quote bytes of the file).
-- pg_read_file for superusers (and roles granted it); for members of pg_read_server_files, whom
-- PostgreSQL lets read files with COPY but not with pg_read_file unless also granted it, COPY into
-- a temporary table.
create or replace function omni_kube._server_file_text(path text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  content text;
begin
  if has_function_privilege('pg_catalog.pg_read_file(text)', 'EXECUTE') then
    return pg_read_file(path);
  end if;
  -- CSV with delimiter and quote bytes no text file holds: one row per line, nothing unescaped.
  -- (Whether the last line ended with a line break is lost, which matters to none of the files
  -- read here.)
  create temporary table omni_kube_file_lines (n bigint generated always as identity, line text);
  execute format('copy pg_temp.omni_kube_file_lines (line) from %L with (format csv, delimiter %L, quote %L, encoding %L)',
                 path, E'\x01', E'\x02', getdatabaseencoding());
  select string_agg(coalesce(line, ''), E'\n' order by n) into content
    from pg_temp.omni_kube_file_lines;
  drop table pg_temp.omni_kube_file_lines;
  return coalesce(content, '');
end
$$;
revoke all on function omni_kube._server_file_text(text) from public;
grant execute on function omni_kube._server_file_text(text) to omni_kube;
