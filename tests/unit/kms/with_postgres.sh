#!/bin/sh
# Runs a command against a throw-away PostgreSQL server:
#   with_postgres.sh COMMAND [ARGS...]
# initdb into a temp dir, start `postgres` on a Unix socket only (no TCP),
# wait for it with pg_isready, run COMMAND with PGHOST, PGPORT, PGUSER and
# CV_KMS_PG_DATADIR set, stop the server and remove the dir. The server runs
# as the `postgres` user when we are root (PostgreSQL refuses root), else
# as ourselves. Without PostgreSQL installed this FAILS (exit 1): install
# the Debian packages postgresql and libpq-dev (scripts/install-deps.sh).
set -eu

bindir=""
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ] && command -v initdb >/dev/null 2>&1; then
	bindir=$(dirname "$(command -v initdb)")
fi
if [ -z "$bindir" ] || ! command -v pg_isready >/dev/null 2>&1; then
	echo "with_postgres: PostgreSQL is not installed (need the Debian" \
		"packages postgresql and libpq-dev)" >&2
	exit 1
fi

as_pg() { "$@"; }
pguser=$(id -un)
if [ "$(id -u)" = 0 ]; then
	if ! id postgres >/dev/null 2>&1; then
		echo "with_postgres: running as root without a postgres user" >&2
		exit 1
	fi
	as_pg() { runuser -u postgres -- "$@"; }
	pguser=postgres
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kms-pg-XXXXXX")
chmod 755 "$tmp"
mkdir "$tmp/data" "$tmp/sock"
[ "$(id -u)" = 0 ] && chown -R postgres "$tmp/data" "$tmp/sock"
# A port from the pid, so that parallel runs rarely meet; only a Unix
# socket in our own dir is used, so a clash only fails the start.
port=$((20000 + $$ % 20000))

cleanup() {
	as_pg "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop \
		>/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

as_pg "$bindir/initdb" -D "$tmp/data" -U "$pguser" --auth=trust \
	--no-sync -E UTF8 >"$tmp/initdb.log" 2>&1 || {
	cat "$tmp/initdb.log" >&2
	exit 1
}
as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/data/server.log" -s \
	-o "-k $tmp/sock -p $port -c listen_addresses='' -c fsync=off" start

i=0
until pg_isready -q -h "$tmp/sock" -p "$port"; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "with_postgres: server did not start" >&2
		cat "$tmp/data/server.log" >&2
		exit 1
	fi
	sleep 0.1
done

export PGHOST="$tmp/sock" PGPORT="$port" PGUSER="$pguser"
export CV_KMS_PG_DATADIR="$tmp/data"
set +e
"$@"
rc=$?
set -e
exit $rc
