-- A literal (|) or folded (>) block scalar whose header is on line `n`; its lines follow, indented
-- more than `parent_indent`. Returns the text and the first line after it.
create or replace function omni_kube._yaml_block_scalar(lines text[], n int, header text, parent_indent int,
                                             out value text, out next_line int)
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  m text[];
  folded boolean;
  chomp text;
  content_indent int;
  k int := n + 1;
  body text[] := '{}';
  l text;
  ind int;
  last_content int := 0;
  blanks int := 0;
  previous_more boolean;
  more boolean;
begin
  m := regexp_match(header, '^([|>])(?:([1-9])([-+])?|([-+])([1-9])?)?([ \t]+#.*)?[ \t]*$');
  if m is null then
    perform omni_kube._yaml_error(n, 'a malformed block scalar header (| or > with an optional indentation digit and - or +)');
  end if;
  folded := m[1] = '>';
  chomp := coalesce(m[3], m[4], '');
  content_indent := greatest(parent_indent, 0) + coalesce(m[2], m[5])::int;
  while k <= cardinality(lines) loop
    l := lines[k];
    if l ~ '^ *$' then
      body := body || ''::text;
      k := k + 1;
      continue;
    end if;
    ind := length(l) - length(ltrim(l, ' '));
    if content_indent is null then
      exit when ind <= parent_indent;
      content_indent := ind;
    end if;
    exit when ind < content_indent;
    body := body || substr(l, content_indent + 1);
    last_content := cardinality(body);
    k := k + 1;
  end loop;
  next_line := k;

  value := '';
  for i in 1 .. last_content loop
    l := body[i];
    if l = '' then
      blanks := blanks + 1;
      continue;
    end if;
    if not folded then
      value := value || case when previous_more is not null then E'\n' else '' end
                     || repeat(E'\n', blanks) || l;
      previous_more := false; -- (only marks that a line came before)
    else
      -- Folding joins lines with a space; blank lines and more-indented lines keep their breaks.
      more := l ~ '^[ \t]';
      value := value || case
        when previous_more is null then repeat(E'\n', blanks)
        when not previous_more and not more and blanks = 0 then ' '
        when not previous_more and not more then repeat(E'\n', blanks)
        else repeat(E'\n', blanks + 1)
      end || l;
      previous_more := more;
    end if;
    blanks := 0;
  end loop;
  if chomp = '-' then
    return;
  end if;
  if last_content > 0 then
    value := value || E'\n';
  end if;
  if chomp = '+' then
    value := value || repeat(E'\n', cardinality(body) - last_content);
  end if;
end
$$;
revoke all on function omni_kube._yaml_block_scalar(text[], int, text, int) from public;
grant execute on function omni_kube._yaml_block_scalar(text[], int, text, int) to omni_kube;
