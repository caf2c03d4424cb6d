-- The value that starts with `rest` on line `n` in block context, inside a node indented
-- `parent_indent` (-1 at the top): a block scalar, a quoted scalar, a flow collection or a plain
-- scalar, each possibly continued on lines indented more than `parent_indent`.
create or replace function omni_kube._yaml_value(lines text[], n int, rest text, parent_indent int,
                                      out value jsonb, out next_line int)
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  total constant int := cardinality(lines);
  k int := n;
  text_so_far text := rest;
  q record;
  block record;
  flow record;
  used int;
  plain text;
  l text;
  blanks int := 0;
begin
  if rest ~ '^[|>]' then
    select * into block from omni_kube._yaml_block_scalar(lines, n, rest, parent_indent);
    value := to_jsonb(block.value);
    next_line := block.next_line;
    return;
  end if;
  if rest ~ '^[&*!]' then
    perform omni_kube._yaml_error(n, 'anchors, aliases and tags are not supported', '0A000');
  end if;
  if rest ~ '^\?([ \t]|$)' then
    perform omni_kube._yaml_error(n, 'complex mapping keys (?) are not supported', '0A000');
  end if;
  if rest ~ '^-([ \t]|$)' then
    perform omni_kube._yaml_error(n, 'a sequence cannot start on the line of its mapping key; put "- " on the next line');
  end if;
  if rest ~ '^[%@`,\]}]' then
    perform omni_kube._yaml_error(n, 'a plain value cannot start with %, @, `, ",", "]" or "}"; quote it');
  end if;

  if left(rest, 1) in ('"', '''') then
    loop
      select * into q from omni_kube._yaml_quoted(text_so_far, n);
      exit when q.rest is not null;
      if k >= total or not (lines[k + 1] ~ '^[ \t]*$'
                            or length(lines[k + 1]) - length(ltrim(lines[k + 1], ' ')) > parent_indent) then
        perform omni_kube._yaml_error(n, 'a quoted string is not closed');
      end if;
      k := k + 1;
      text_so_far := text_so_far || E'\n' || lines[k];
    end loop;
    if q.rest !~ '^([ \t]+#.*)?[ \t]*$' then
      perform omni_kube._yaml_error(k, 'unexpected text after a quoted string');
    end if;
    value := to_jsonb(q.value);
    next_line := k + 1;
    return;
  end if;

  if left(rest, 1) in ('[', '{') then
    -- A flow collection may go on over the lines indented more than its parent.
    while k < total and (lines[k + 1] ~ '^[ \t]*$'
                         or length(lines[k + 1]) - length(ltrim(lines[k + 1], ' ')) > parent_indent) loop
      k := k + 1;
      text_so_far := text_so_far || E'\n' || lines[k];
    end loop;
    select * into flow from omni_kube._yaml_flow(text_so_far, n);
    used := length(text_so_far) - length(flow.rest);
    used := length(left(text_so_far, used)) - length(replace(left(text_so_far, used), E'\n', ''));
    if split_part(flow.rest, E'\n', 1) !~ '^([ \t]+#.*)?[ \t]*$' then
      perform omni_kube._yaml_error(n + used, 'unexpected text after a flow collection');
    end if;
    value := flow.value;
    next_line := n + used + 1;
    return;
  end if;

  plain := rtrim(regexp_replace(rest, '[ \t]+#.*$', ''), E' \t');
  k := n + 1;
  next_line := n + 1;
  loop
    if plain ~ ':([ \t]|$)' then
      perform omni_kube._yaml_error(k - 1, 'a ": " inside a plain value; quote the value');
    end if;
    -- A comment ends a plain scalar; so does a line not indented more than its parent.
    exit when rest ~ '[ \t]#' or k > total;
    l := lines[k];
    if l ~ '^[ \t]*$' then
      blanks := blanks + 1;
      k := k + 1;
      continue;
    end if;
    exit when l ~ '^[ \t]*#' or l ~ '^(---|\.\.\.)([ \t]|$)'
           or length(l) - length(ltrim(l, ' ')) <= parent_indent;
    rest := btrim(l, E' \t');
    plain := plain || case when blanks = 0 then ' ' else repeat(E'\n', blanks) end
                   || rtrim(regexp_replace(rest, '[ \t]+#.*$', ''), E' \t');
    blanks := 0;
    k := k + 1;
    next_line := k;
  end loop;
  value := omni_kube._yaml_plain(plain);
end
$$;
revoke all on function omni_kube._yaml_value(text[], int, text, int) from public;
grant execute on function omni_kube._yaml_value(text[], int, text, int) to omni_kube;
