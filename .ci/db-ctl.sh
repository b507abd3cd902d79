#!/usr/bin/env bash
# Stop or start the loopback PostgreSQL / MariaDB that .ci/services.sh started, for the tests that restart
# a database in the middle of a sync: `db-ctl.sh pg|mysql stop|start`. Start waits until it answers.
set -euo pipefail
db=$1 action=$2
case "$db:$action" in
  pg:stop)  pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -n 1)" main stop -m fast ;;
  pg:start) pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
            for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -q && exit 0; sleep 0.25; done; exit 1 ;;
  mysql:stop)  mysqladmin -uroot shutdown ;;
  mysql:start) mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
               (setsid mysqld_safe --user=mysql --bind-address=127.0.0.1 >>/tmp/altcraft-sync-mysqld.log 2>&1 &)
               for _ in $(seq 1 120); do mysqladmin ping --silent >/dev/null 2>&1 && exit 0; sleep 0.25; done; exit 1 ;;
  *) echo "usage: db-ctl.sh pg|mysql stop|start" >&2; exit 2 ;;
esac
