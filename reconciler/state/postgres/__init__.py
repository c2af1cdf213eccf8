"""The PostgreSQL state backend: one row per account per workspace, an advisory lock, batched commits.

`postgresql://USER@HOST:PORT/DB?schema=NAME&workspace=NAME` (schema default `reconciler`, workspace `default`).

* Reading creates nothing: absent tables are an empty state, so a role that may only read can plan. The tables
  are created (and versioned in `schema_version`) by the first command that writes.
* The lock is a session-level advisory lock held by a dedicated connection; PostgreSQL releases it when that
  session ends, so a killed apply leaves no stale lock. The holder's description (command, pid, host, since) is
  kept whole in `lock_holders`.
* During an apply, results are group-committed by a writer thread as they arrive; the workspace's serial moves
  at the first commit, so a plan saved before the apply is refused afterwards even if the apply was killed.
* Every database error becomes one StateError line: whitespace collapsed, the URL's password never in it.

One module per job: `url` (the state URL), `database` (connections, errors), `schema` (tables, version, numbered
migrations), `rows` (a workspace's rows, read and written), `lock` (the advisory locks and their holders),
`journal` (recording an apply), and `backend` (`PostgresBackend`: the `Backend` interface over them).
"""
