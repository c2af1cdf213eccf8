"""The file state backend: one JSON file, an append-only journal beside it, and an OS lock file.

Guarantees:
* the state file is only ever replaced atomically (write a new temporary file, fsync, rename, fsync the
  directory), with mode 0600, so whatever kills the process the file is either the old or the new state;
* no file is opened through a symbolic link (reconciler.fsutil): a link at the state's path is followed only
  when the user named that path, and a link at the journal's or the lock's path is refused;
* during an apply every event is written to `<state>.journal` at once (so a kill -9 loses nothing written) and
  fsynced in batches (for power loss); the journal is folded into the state at the end, or at the next start;
* the lock is `flock` on `<state>.lock`, which the kernel releases when the process dies: no stale locks.

One module per job: `statefile` (the JSON document, read and written), `journal` (recording an apply, and
replaying what a killed one left), `lock` (the lock file), and `backend` (`FileBackend`: the `Backend` interface
over them, and where the state is when its path is a symbolic link).
"""
