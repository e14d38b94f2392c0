"""The `ok` / `FAIL` lines the CI checkers print, and the failures they collect: one list per
process, shared by everything that imports it."""

FAILURES = []


def ok(msg):
    print(f"ok    {msg}", flush=True)


def bad(msg):
    FAILURES.append(msg)
    print(f"FAIL  {msg}", flush=True)
