-- A server file's text. pg_read_file for superusers (and roles granted it); for members of
-- pg_read_server_files, whom PostgreSQL lets read files with COPY but not with pg_read_file unless
-- also granted it, COPY into a temporary table.
create or replace function omni_kube._read_server_file(path text, what text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  content text;
begin
  begin
    if has_function_privilege('pg_catalog.pg_read_file(text)', 'EXECUTE') then
      return pg_read_file(path);
    end if;
    if not pg_has_role('pg_read_server_files', 'USAGE') then
      raise insufficient_privilege;
    end if;
    -- CSV with delimiter and quote bytes no text file holds: one row per line, nothing unescaped.
    -- (Whether the last line ended with a line break is lost, which matters to none of the
    -- files read here.)
    create temporary table omni_kube_file_lines (n bigint generated always as identity, line text);
    execute format('copy pg_temp.omni_kube_file_lines (line) from %L with (format csv, delimiter %L, quote %L, encoding %L)',
                   path, E'\x01', E'\x02', getdatabaseencoding());
    select string_agg(coalesce(line, ''), E'\n' order by n) into content
      from pg_temp.omni_kube_file_lines;
    drop table pg_temp.omni_kube_file_lines;
    return coalesce(content, '');
  exception
    -- (Errors about a file's content would quote it: only the path and the OS error are passed on.)
    when insufficient_privilege then
      raise exception 'omni_kube: permission denied to read "%" (%)', path, what
        using errcode = '42501',
          hint = 'Reading files on the database server needs superuser or membership in pg_read_server_files (grant pg_read_server_files to ...). Without it, pass the kubeconfig as jsonb or json with the certificates and token embedded (certificate-authority-data, client-certificate-data, client-key-data, token).';
    when undefined_file then
      raise exception 'omni_kube: "%" (%) does not exist', path, what
        using errcode = '58P01', hint = 'Paths are read on the database server, as its operating-system user.';
    when read_only_sql_transaction then
      raise exception 'omni_kube: cannot read "%" (%) in a read-only transaction', path, what
        using errcode = '25006',
          hint = 'Members of pg_read_server_files read files with COPY into a temporary table, which a read-only transaction does not allow. Call it in a read-write transaction, or grant execute on function pg_read_file(text) to the role.';
    when others then
      -- Data exceptions (class 22) can quote bytes of the file; the rest name only the path.
      if left(sqlstate, 2) = '22' then
        raise exception 'omni_kube: cannot read "%" (%): it is not text in the database encoding', path, what
          using errcode = sqlstate;
      end if;
      raise exception 'omni_kube: cannot read "%" (%)', path, what
        using errcode = sqlstate, detail = sqlerrm;
  end;
end
$$;

revoke all on function omni_kube._read_server_file(text, text) from public;

grant execute on function omni_kube._read_server_file(text, text) to omni_kube;
