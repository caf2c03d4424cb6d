-- A server file's text for load_kubeconfig, `what` saying what the file is for. Errors name the
-- path, `what` and the cause, never the file's content.
create or replace function omni_kube._read_server_file(path text, what text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  -- (True for superusers. A role that may only execute pg_read_file reads within the data directory.)
  reads_any constant boolean := pg_has_role('pg_read_server_files', 'USAGE');
  by_copy constant boolean := not has_function_privilege('pg_catalog.pg_read_file(text)', 'EXECUTE');
  os_name text;
  os_uid text;
  is_directory boolean;
begin
  if by_copy and reads_any and not has_database_privilege(current_database(), 'TEMPORARY') then
    raise exception 'omni_kube: cannot read "%" (%): reading files as a member of pg_read_server_files needs the TEMPORARY privilege on the database', path, what
      using errcode = '42501',
        hint = 'Members of pg_read_server_files read files with COPY into a temporary table. Grant the role temporary on the database, or execute on function pg_read_file(text).';
  end if;
  begin
    if by_copy and not reads_any then
      raise insufficient_privilege;
    end if;
    return omni_kube._server_file_text(path);
  exception
    -- (Errors about a file's content would quote it: only the path and the OS error are passed on.)
    when insufficient_privilege then
      -- PostgreSQL raises 42501 both for a missing database privilege and for the OS refusing
      -- the server's user; whoever may read any server file got here through the second.
      if not reads_any then
        raise exception 'omni_kube: permission denied to read "%" (%)', path, what
          using errcode = '42501',
            hint = 'Reading files on the database server needs superuser or membership in pg_read_server_files (grant pg_read_server_files to ...). Without it, pass the kubeconfig as jsonb or json with the certificates and token embedded (certificate-authority-data, client-certificate-data, client-key-data, token).';
      end if;
      select name, uid into os_name, os_uid from omni_kube._server_os_user();
      raise exception 'omni_kube: the database server''s operating-system user% cannot read "%" (%)',
        case when os_name is not null then format(', "%s" (uid %s),', os_name, os_uid)
             when os_uid is not null then format(' (uid %s)', os_uid)
             else '' end,
        path, what
        using errcode = '42501', detail = sqlerrm,
          hint = format('The server opens files as its operating-system user, and no database privilege (not even superuser) changes what that user may read. Give %s read access to the file (as its owner or through its group) and search access to every directory above it, or pass the kubeconfig as jsonb or json with the certificates and token embedded (certificate-authority-data, client-certificate-data, client-key-data, token).',
                        case when os_name is not null then format('"%s"', os_name)
                             when os_uid is not null then format('uid %s', os_uid)
                             else 'that user' end);
    when undefined_file then
      raise exception 'omni_kube: "%" (%) does not exist', path, what
        using errcode = '58P01', hint = 'Paths are read on the database server, as its operating-system user.';
    when wrong_object_type then
      -- A directory, or a path through something that is not one (EISDIR, ENOTDIR). Only those
      -- allowed pg_stat_file can tell which.
      begin
        if has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE') then
          is_directory := (pg_stat_file(path, true)).isdir;
        end if;
      exception when others then
        is_directory := null;
      end;
      if is_directory then
        raise exception 'omni_kube: "%" (%) is a directory, not a file', path, what
          using errcode = '42809';
      end if;
      raise exception 'omni_kube: "%" (%) is not a file', path, what
        using errcode = '42809', detail = sqlerrm;
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
