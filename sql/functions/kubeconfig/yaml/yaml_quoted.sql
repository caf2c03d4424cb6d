-- A quoted scalar at the start of `src`: its value and the text after the closing quote; both NULL
-- when the quote is not closed in `src`.
create or replace function omni_kube._yaml_quoted(src text, line int, out value text, out rest text)
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  m text[];
begin
  if left(src, 1) = '"' then
    m := regexp_match(src, '^"((?:[^"\\]|\\.)*)"(.*)$');
    if m is not null then
      value := omni_kube._yaml_double(m[1], line);
      rest := m[2];
    end if;
  elsif left(src, 1) = '''' then
    -- (A closing quote is one not followed by another: '' is an escaped quote.)
    m := regexp_match(src, '^''((?:[^'']|'''')*)''(?!'')(.*)$');
    if m is not null then
      value := replace(omni_kube._yaml_fold(m[1]), '''''', '''');
      rest := m[2];
    end if;
  end if;
end
$$;
revoke all on function omni_kube._yaml_quoted(text, int) from public;
grant execute on function omni_kube._yaml_quoted(text, int) to omni_kube;
