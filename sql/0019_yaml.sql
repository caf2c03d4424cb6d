-- omni_kube._yaml_to_jsonb(text): the YAML that kubectl, client-go, kind, k3s and people write in
-- kubeconfigs, as jsonb. PostgreSQL has no YAML reader and plpython is not available, so this is
-- a careful subset in PL/pgSQL: block mappings and sequences, plain, single- and double-quoted
-- scalars, literal and folded block scalars, comments, one document (optionally after ---), and
-- flow collections ({}, [], {a: 1, b: [x, y]}). Anchors, aliases, tags, complex keys and several
-- documents are refused with the line number. Errors never quote the input: it holds secrets.

-- Raises a YAML error at `line`: 22P02 for malformed input, 0A000 for YAML this reader does not cover.
create function omni_kube._yaml_error(line int, message text, code text default '22P02')
  returns void
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if code = '0A000' then
    raise exception 'omni_kube: YAML line %: %', line, message
      using errcode = code,
        hint = 'This reader covers the YAML that kubectl and client-go write. Convert the file to JSON, e.g. kubectl config view --raw -o json.';
  end if;
  raise exception 'omni_kube: YAML line %: %', line, message using errcode = code;
end
$$;

-- A plain (unquoted) scalar typed as YAML 1.2's core schema does: null, booleans, decimal numbers;
-- everything else stays a string (0x1F, .5, .inf, 2024-01-01, yes and no too).
create function omni_kube._yaml_plain(value text) returns jsonb
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

-- Folds the line breaks of a multi-line flow scalar: whitespace around a break goes, a single
-- break becomes a space, and n breaks in a row become n - 1 newlines.
create function omni_kube._yaml_fold(body text) returns text
  language sql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
    select regexp_replace(
             regexp_replace(regexp_replace(body, '[ \t]*\n[ \t]*', E'\n', 'g'),
                            '(^|[^\n])\n(?=[^\n]|$)', '\1 ', 'g'),
             '\n(\n*)', '\1', 'g')
  $$;

-- The body of a double-quoted scalar (between the quotes): escapes resolved, breaks folded.
create function omni_kube._yaml_double(body text, line int) returns text
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

-- A quoted scalar at the start of `src`: its value and the text after the closing quote; both NULL
-- when the quote is not closed in `src`.
create function omni_kube._yaml_quoted(src text, line int, out value text, out rest text)
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

-- Whitespace and comments at the start of flow text.
create function omni_kube._yaml_skip(src text) returns text
  language sql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$ select regexp_replace(src, '^(\s+(#[^\n]*)?)+', '') $$;

-- One flow node ([...], {...}, a quoted or plain scalar) at the start of `src`, which starts with
-- no whitespace; returns it and the text after it.
create function omni_kube._yaml_flow(src text, line int, out value jsonb, out rest text)
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  s text;
  key text;
  item_value jsonb;
  item_rest text;
  q record;
  plain text;
begin
  if src = '' then
    perform omni_kube._yaml_error(line, 'a flow collection is not closed');
  end if;
  case left(src, 1)
  when '[' then
    value := '[]';
    s := omni_kube._yaml_skip(substr(src, 2));
    loop
      if s = '' then
        perform omni_kube._yaml_error(line, 'a flow sequence ([...]) is not closed');
      end if;
      if left(s, 1) = ']' then
        rest := substr(s, 2);
        return;
      end if;
      select * into item_value, item_rest from omni_kube._yaml_flow(s, line);
      s := omni_kube._yaml_skip(item_rest);
      if left(s, 1) = ':' then
        perform omni_kube._yaml_error(line, 'key: value pairs inside a flow sequence are not supported', '0A000');
      end if;
      value := value || jsonb_build_array(item_value);
      if left(s, 1) = ',' then
        s := omni_kube._yaml_skip(substr(s, 2));
      elsif left(s, 1) <> ']' then
        perform omni_kube._yaml_error(line, 'expected "," or "]" in a flow sequence');
      end if;
    end loop;
  when '{' then
    value := '{}';
    s := omni_kube._yaml_skip(substr(src, 2));
    loop
      if s = '' then
        perform omni_kube._yaml_error(line, 'a flow mapping ({...}) is not closed');
      end if;
      if left(s, 1) = '}' then
        rest := substr(s, 2);
        return;
      end if;
      if left(s, 1) in ('"', '''') then
        select * into q from omni_kube._yaml_quoted(s, line);
        if q.rest is null then
          perform omni_kube._yaml_error(line, 'a quoted key is not closed');
        end if;
        key := q.value;
        s := q.rest;
      elsif left(s, 1) in ('[', '{', ']', ',', '&', '*', '!') or s ~ '^\?\s' then
        perform omni_kube._yaml_error(line, 'only scalar keys are supported in a flow mapping', '0A000');
      else
        plain := (regexp_match(s, '^(.*?)(?=:(?:[\s,\[\]{}]|$)|[,\[\]{}]|\s#|$)'))[1];
        key := btrim(omni_kube._yaml_fold(plain), E' \t\n');
        s := substr(s, length(plain) + 1);
      end if;
      if value ? key then
        perform omni_kube._yaml_error(line, 'a mapping key appears twice');
      end if;
      s := omni_kube._yaml_skip(s);
      if left(s, 1) = ':' then
        s := omni_kube._yaml_skip(substr(s, 2));
        if left(s, 1) in (',', '}') then
          item_value := null;
          item_rest := s;
        else
          select * into item_value, item_rest from omni_kube._yaml_flow(s, line);
        end if;
      else
        item_value := null; -- {a, b}: keys without values
        item_rest := s;
      end if;
      value := value || jsonb_build_object(key, item_value);
      s := omni_kube._yaml_skip(item_rest);
      if left(s, 1) = ',' then
        s := omni_kube._yaml_skip(substr(s, 2));
      elsif left(s, 1) <> '}' then
        perform omni_kube._yaml_error(line, 'expected "," or "}" in a flow mapping');
      end if;
    end loop;
  when '"', '''' then
    select * into q from omni_kube._yaml_quoted(src, line);
    if q.rest is null then
      perform omni_kube._yaml_error(line, 'a quoted string is not closed');
    end if;
    value := to_jsonb(q.value);
    rest := q.rest;
  when '&', '*', '!' then
    perform omni_kube._yaml_error(line, 'anchors, aliases and tags are not supported', '0A000');
  when ']', '}', ',', ':' then
    perform omni_kube._yaml_error(line, 'expected a value in a flow collection');
  else
    plain := (regexp_match(src, '^(.*?)(?=:(?:[\s,\[\]{}]|$)|[,\[\]{}]|\s#|$)'))[1];
    if plain = '' then
      perform omni_kube._yaml_error(line, 'expected a value in a flow collection');
    end if;
    value := omni_kube._yaml_plain(btrim(omni_kube._yaml_fold(plain), E' \t\n'));
    rest := substr(src, length(plain) + 1);
  end case;
end
$$;

-- A literal (|) or folded (>) block scalar whose header is on line `n`; its lines follow, indented
-- more than `parent_indent`. Returns the text and the first line after it.
create function omni_kube._yaml_block_scalar(lines text[], n int, header text, parent_indent int,
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

-- The value that starts with `rest` on line `n` in block context, inside a node indented
-- `parent_indent` (-1 at the top): a block scalar, a quoted scalar, a flow collection or a plain
-- scalar, each possibly continued on lines indented more than `parent_indent`.
create function omni_kube._yaml_value(lines text[], n int, rest text, parent_indent int,
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

-- Whether `content` (a line without its indentation) starts a mapping entry: {key, rest} with the
-- text after the colon, else NULL.
create function omni_kube._yaml_key(content text, line int) returns text[]
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  q record;
  spaced text;
  colon int;
  hash int;
  key text;
begin
  if left(content, 1) in ('"', '''') then
    select * into q from omni_kube._yaml_quoted(content, line);
    if q.rest ~ '^[ \t]*:([ \t]|$)' then
      return array[q.value, substr(q.rest, strpos(q.rest, ':') + 1)];
    end if;
    return null;
  end if;
  if content ~ '^\?([ \t]|$)' then
    perform omni_kube._yaml_error(line, 'complex mapping keys (?) are not supported', '0A000');
  end if;
  if content ~ '^[\[{|>]' then
    return null;
  end if;
  spaced := translate(content, E'\t', ' ') || ' ';
  colon := strpos(spaced, ': ');
  hash := strpos(' ' || spaced, ' #'); -- the position of the '#' in spaced
  if colon = 0 or (hash > 0 and hash < colon) then
    return null;
  end if;
  key := rtrim(left(content, colon - 1), E' \t');
  if key = '' then
    perform omni_kube._yaml_error(line, 'an empty mapping key');
  end if;
  if key ~ '^[&*!]' then
    perform omni_kube._yaml_error(line, 'anchors, aliases and tags are not supported', '0A000');
  end if;
  if key ~ '^[%@`,\]}]' then
    perform omni_kube._yaml_error(line, 'a plain key cannot start with %, @, `, ",", "]" or "}"; quote it');
  end if;
  return array[key, substr(content, colon + 1)];
end
$$;

-- Puts `value` into a collection: under `key` in a mapping, at the end of a sequence.
create function omni_kube._yaml_attach(kind text, collection jsonb, key text, value jsonb)
  returns jsonb
  language sql immutable
  set search_path = pg_catalog, pg_temp
  as $$
    select case when kind = 'map' then collection || jsonb_build_object(key, value)
                else collection || jsonb_build_array(value) end
  $$;

-- YAML (or JSON) text as jsonb; NULL for an empty document.
create function omni_kube._yaml_to_jsonb(source text) returns jsonb
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  lines text[];
  total int;
  n int := 1;
  raw text;
  ind int;
  content text;
  rest text;
  kv text[];
  parsed record;
  value jsonb;
  -- The open block collections, innermost last: kind ('map' or 'seq'), indentation, value so far,
  -- the key whose value comes next (maps), and whether a key or item still waits for its value.
  depth int := 0;
  kinds text[] := '{}';
  indents int[] := '{}';
  vals jsonb[] := '{}';
  keys text[] := '{}';
  awaiting boolean[] := '{}';
  root jsonb;
  has_root boolean := false;
  started boolean := false;
begin
  -- JSON is YAML; PostgreSQL's own parser reads it faster.
  begin
    return source::jsonb;
  exception when others then
    null;
  end;

  lines := string_to_array(
    replace(replace(regexp_replace(source, '^\uFEFF', ''), E'\r\n', E'\n'), E'\r', E'\n'), E'\n');
  -- The break that ends the last line starts no line of its own.
  if lines[cardinality(lines)] = '' then
    lines := lines[1 : cardinality(lines) - 1];
  end if;
  total := coalesce(cardinality(lines), 0);
  while n <= total loop
    raw := lines[n];
    if raw ~ '^[ \t]*(#.*)?$' then
      n := n + 1;
      continue;
    end if;
    if raw ~ '^ *\t' then
      perform omni_kube._yaml_error(n, 'a tab in the indentation (YAML indents with spaces)');
    end if;
    if raw ~ '^---([ \t]|$)' then
      if started then
        perform omni_kube._yaml_error(n, 'several documents in one file are not supported', '0A000');
      end if;
      if raw !~ '^---([ \t]+#.*)?[ \t]*$' then
        perform omni_kube._yaml_error(n, 'content on the --- line is not supported', '0A000');
      end if;
      started := true;
      n := n + 1;
      continue;
    end if;
    exit when raw ~ '^\.\.\.([ \t]|$)'; -- the end of the document
    if raw ~ '^%' then
      if started or raw !~ '^%YAML[ \t]' then
        perform omni_kube._yaml_error(n, 'directives other than %YAML are not supported', '0A000');
      end if;
      n := n + 1;
      continue;
    end if;
    started := true;
    ind := length(raw) - length(ltrim(raw, ' '));
    content := rtrim(substr(raw, ind + 1), E' \t');

    -- Line n may hold several nodes ("- key: value"): each pass handles one, at indentation ind.
    <<line>>
    loop
      kv := null;
      -- Close the collections this line ends; a key or item left without a value gets null.
      loop
        exit when depth = 0;
        if awaiting[depth] then
          exit when ind > indents[depth];
          -- key:\n- item: a sequence may sit at its key's indentation.
          exit when ind = indents[depth] and kinds[depth] = 'map' and content ~ '^-([ \t]|$)';
          vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], 'null');
          awaiting[depth] := false;
        end if;
        if ind < indents[depth]
           or (ind = indents[depth] and kinds[depth] = 'seq' and content !~ '^-([ \t]|$)'
               and depth > 1 and kinds[depth - 1] = 'map' and indents[depth - 1] = ind) then
          value := vals[depth];
          depth := depth - 1;
          if depth = 0 then
            root := value;
            has_root := true;
          else
            vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], value);
            awaiting[depth] := false;
          end if;
          continue;
        end if;
        exit;
      end loop;

      if depth = 0 and has_root then
        perform omni_kube._yaml_error(n, 'text after the end of the document''s top-level node');
      end if;
      if depth > 0 and not awaiting[depth] then
        if ind > indents[depth] then
          perform omni_kube._yaml_error(n, 'unexpected indentation');
        end if;
        if kinds[depth] = 'seq' and content !~ '^-([ \t]|$)' then
          perform omni_kube._yaml_error(n, 'expected a "- " sequence item at this indentation');
        end if;
        if kinds[depth] = 'map' and content ~ '^-([ \t]|$)' then
          perform omni_kube._yaml_error(n, 'a "- " sequence item where a mapping key was expected');
        end if;
      else
        -- A new node starts here.
        if content ~ '^-([ \t]|$)' then
          kinds[depth + 1] := 'seq';
          vals[depth + 1] := '[]';
        else
          kv := omni_kube._yaml_key(content, n);
          if kv is null then
            select * into parsed from omni_kube._yaml_value(lines, n, content,
                                            case when depth = 0 then -1 else indents[depth] end);
            if depth = 0 then
              root := parsed.value;
              has_root := true;
            else
              vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], parsed.value);
              awaiting[depth] := false;
            end if;
            n := parsed.next_line;
            exit line;
          end if;
          kinds[depth + 1] := 'map';
          vals[depth + 1] := '{}';
        end if;
        depth := depth + 1;
        indents[depth] := ind;
        keys[depth] := null;
        awaiting[depth] := false;
      end if;

      if kinds[depth] = 'seq' then
        rest := substr(content, 2);
        awaiting[depth] := true;
        if rest ~ '^[ \t]*(#.*)?$' then
          n := n + 1;
          exit line;
        end if;
        -- The item's node starts on this line, after "- ".
        ind := ind + 1 + length(rest) - length(ltrim(rest, E' \t'));
        content := ltrim(rest, E' \t');
        continue line;
      end if;

      kv := coalesce(kv, omni_kube._yaml_key(content, n));
      if kv is null then
        perform omni_kube._yaml_error(n, 'expected "key: value"');
      end if;
      if vals[depth] ? kv[1] then
        perform omni_kube._yaml_error(n, 'a mapping key appears twice');
      end if;
      keys[depth] := kv[1];
      awaiting[depth] := true;
      rest := ltrim(kv[2], E' \t');
      if rest ~ '^(#.*)?$' then
        n := n + 1;
        exit line;
      end if;
      select * into parsed from omni_kube._yaml_value(lines, n, rest, ind);
      vals[depth] := omni_kube._yaml_attach('map', vals[depth], kv[1], parsed.value);
      awaiting[depth] := false;
      n := parsed.next_line;
      exit line;
    end loop;
  end loop;

  -- After "...", only comments may follow.
  for k in n + 1 .. total loop
    if lines[k] !~ '^[ \t]*(#.*)?$' then
      perform omni_kube._yaml_error(k, 'several documents in one file are not supported', '0A000');
    end if;
  end loop;

  while depth > 0 loop
    if awaiting[depth] then
      vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], 'null');
    end if;
    value := vals[depth];
    depth := depth - 1;
    if depth = 0 then
      root := value;
    else
      vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], value);
      awaiting[depth] := false;
    end if;
  end loop;
  return root;
end
$$;

revoke all on function omni_kube._yaml_error(int, text, text), omni_kube._yaml_plain(text),
  omni_kube._yaml_fold(text), omni_kube._yaml_double(text, int), omni_kube._yaml_quoted(text, int),
  omni_kube._yaml_skip(text), omni_kube._yaml_flow(text, int),
  omni_kube._yaml_block_scalar(text[], int, text, int), omni_kube._yaml_value(text[], int, text, int),
  omni_kube._yaml_key(text, int), omni_kube._yaml_attach(text, jsonb, text, jsonb),
  omni_kube._yaml_to_jsonb(text) from public;
-- load_kubeconfig runs as its caller, so its callers need these; _yaml_to_jsonb is useful on its own
-- (a kubeconfig's YAML text, read by the client, into load_kubeconfig(jsonb)).
grant execute on function omni_kube._yaml_error(int, text, text), omni_kube._yaml_plain(text),
  omni_kube._yaml_fold(text), omni_kube._yaml_double(text, int), omni_kube._yaml_quoted(text, int),
  omni_kube._yaml_skip(text), omni_kube._yaml_flow(text, int),
  omni_kube._yaml_block_scalar(text[], int, text, int), omni_kube._yaml_value(text[], int, text, int),
  omni_kube._yaml_key(text, int), omni_kube._yaml_attach(text, jsonb, text, jsonb),
  omni_kube._yaml_to_jsonb(text) to omni_kube;
