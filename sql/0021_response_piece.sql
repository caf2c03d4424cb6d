-- Large response bodies (a list can be tens of megabytes) reach PostgreSQL in pieces as they
-- arrive, so that the worker never holds one whole: each piece is a chunk of the body as it came
-- off the network, copied in (COPY, binary format), and once the last has arrived the pieces are
-- joined, decoded and parsed into the request's response in one statement.
-- Unlogged: a piece lives only until its response is assembled, and an unfinished response is
-- worth nothing after a crash. Stored without compression: it is read back once, at once.
create unlogged table omni_kube.response_piece (
  request_id bigint not null,
  seq int not null,
  piece bytea not null,
  primary key (request_id, seq)
);
alter table omni_kube.response_piece alter column piece set storage external;
revoke all on omni_kube.response_piece from public;
