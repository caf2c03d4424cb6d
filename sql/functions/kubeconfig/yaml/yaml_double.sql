-- The body of a double-quoted scalar (between the quotes): escapes resolved, breaks folded.
create or replace function omni_kube._yaml_double(body text, line int) returns text
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  result text := '';
  token text[];
  escape text;
  code int;
  high int; -- a UTF-16 high surrogate waiting for its low half (JSON's \ud83d\ude00)
begin
  for token in
    select regexp_matches(body, '\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|\n[ \t]*|.)|([^\\]+)', 'g')
  loop
    escape := token[1];
    if high is not null and (escape is null or escape !~ '^u[dD][c-fC-F]') then
      perform omni_kube._yaml_error(line, 'a \u escape holds half of a UTF-16 surrogate pair');
    end if;
    if escape is null then
      result := result || omni_kube._yaml_fold(token[2]);
      continue;
    end if;
    if escape ~ '^[xuU]' then
      code := ('x' || lpad(substr(escape, 2), 8, '0'))::bit(32)::int;
      if code between 55296 and 56319 then -- D800-DBFF: high surrogate
        high := code;
        continue;
      elsif code between 56320 and 57343 then -- DC00-DFFF: low surrogate
        if high is null then
          perform omni_kube._yaml_error(line, 'a \u escape holds half of a UTF-16 surrogate pair');
        end if;
        code := 65536 + (high - 55296) * 1024 + (code - 56320);
        high := null;
      end if;
      if code = 0 or code > 1114111 then
        perform omni_kube._yaml_error(line, 'a NUL or out-of-range character escape in a double-quoted string');
      end if;
      result := result || chr(code);
      continue;
    end if;
    result := result || case
      when left(escape, 1) = E'\n' then '' -- an escaped line break joins the lines
      when escape = 'n' then E'\n'
      when escape = 't' or escape = E'\t' then E'\t'
      when escape = 'r' then E'\r'
      when escape = '"' then '"'
      when escape = '\' then '\'
      when escape = '/' then '/'
      when escape = ' ' then ' '
      when escape = 'a' then chr(7)
      when escape = 'b' then chr(8)
      when escape = 'v' then chr(11)
      when escape = 'f' then chr(12)
      when escape = 'e' then chr(27)
      when escape = 'N' then chr(133)
      when escape = '_' then chr(160)
      when escape = 'L' then chr(8232)
      when escape = 'P' then chr(8233)
    end;
    if escape not in ('n', 't', E'\t', 'r', '"', '\', '/', ' ', 'a', 'b', 'v', 'f', 'e', 'N', '_', 'L', 'P')
       and left(escape, 1) <> E'\n' then
      perform omni_kube._yaml_error(line,
        case when escape = '0' then 'a NUL (\0) escape in a double-quoted string'
             else 'an unknown escape in a double-quoted string' end);
    end if;
  end loop;
  if high is not null then
    perform omni_kube._yaml_error(line, 'a \u escape holds half of a UTF-16 surrogate pair');
  end if;
  return result;
end
$$;
revoke all on function omni_kube._yaml_double(text, int) from public;
grant execute on function omni_kube._yaml_double(text, int) to omni_kube;
