#!/usr/bin/env bash
# Quality gates, then the whole suite on SQLite, then again on PostgreSQL when one answers.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== ruff"; $BIN/ruff check src tests bench || exit 1
echo "== mypy"; $BIN/mypy || exit 1

echo "== test suite on SQLite"
env -u CONSORTIA_TEST_DATABASE_URL -u CONSORTIA_DATABASE_URL $BIN/python -m pytest "$@"
sqlite_rc=$?
[ $sqlite_rc -ne 0 ] && { echo "SQLite run failed"; exit $sqlite_rc; }

pg_admin="postgresql://postgres@127.0.0.1:5432/postgres"
dbname="consortia_test_$(date +%s)_$$"
if $BIN/python - "$pg_admin" "$dbname" <<'PY'
import sys, psycopg
try:
    with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=3) as c:
        c.execute(f'CREATE DATABASE "{sys.argv[2]}"')
except Exception:
    sys.exit(1)
PY
then
  echo "== test suite on PostgreSQL (fresh database $dbname)"
  CONSORTIA_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$dbname" \
    $BIN/python -m pytest "$@"
  pg_rc=$?
  $BIN/python - "$pg_admin" "$dbname" <<'PY'
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    c.execute(f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)')
PY
  exit $pg_rc
else
  echo "PostgreSQL: no server answers on 127.0.0.1:5432 — skipped; the SQLite run decides."
fi
