-- Percent-encoding of a query value (RFC 3986 unreserved characters stay).
create or replace function omni_kube._url_encode(value text) returns text
  language sql immutable strict set search_path = pg_catalog, pg_temp
  as $$
    select coalesce(string_agg(
             case when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
                       or b in (45, 46, 95, 126) then chr(b)
                  else '%' || upper(lpad(to_hex(b), 2, '0')) end, '' order by i), '')
      from (select i, get_byte(bytes, i) as b
              from (select convert_to(value, 'UTF8') as bytes) v,
                   generate_series(0, octet_length(convert_to(value, 'UTF8')) - 1) i) x
  $$;
