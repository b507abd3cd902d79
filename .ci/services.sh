#!/usr/bin/env bash
# Install (if missing) and start PostgreSQL and MariaDB on loopback for the source tests, then print the
# `export` lines for the test URLs. Used by .ci/run; a developer can `eval "$(bash .ci/services.sh)"`.
set -euo pipefail
log() { echo "services: $*" >&2; }
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v mysqld_safe >/dev/null 2>&1; then
  log "installing postgresql and mariadb-server from Debian's packages (about 2 minutes)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql mariadb-server >&2
fi
pgver=$(ls /etc/postgresql | sort -V | tail -n 1)
pg_ctlcluster "$pgver" main start >&2 2>/dev/null || true
for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done
su postgres -c "psql -q -c \"CREATE ROLE altcraft LOGIN PASSWORD 'altcraft-test'\"" >/dev/null 2>&1 || true
su postgres -c "createdb -O altcraft altcraft_test" >/dev/null 2>&1 || true
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mysqladmin ping --silent >/dev/null 2>&1; then
  (setsid mysqld_safe --user=mysql --bind-address=127.0.0.1 >/tmp/altcraft-sync-mysqld.log 2>&1 &)
fi
for _ in $(seq 1 60); do mysqladmin ping --silent >/dev/null 2>&1 && break; sleep 1; done
mysql -uroot -e "CREATE DATABASE IF NOT EXISTS altcraft_test;
  CREATE USER IF NOT EXISTS 'altcraft'@'127.0.0.1' IDENTIFIED BY 'altcraft-test';
  GRANT ALL ON altcraft_test.* TO 'altcraft'@'127.0.0.1'; FLUSH PRIVILEGES;" >&2
log "postgresql $pgver and mariadb are up on 127.0.0.1"
echo "export SHOP_TEST_PG_URL=postgresql://altcraft:altcraft-test@127.0.0.1:5432/altcraft_test"
echo "export SHOP_TEST_MYSQL_URL=mysql+pymysql://altcraft:altcraft-test@127.0.0.1:3306/altcraft_test"
echo "export SHOP_TEST_DB_CTL=$(cd "$(dirname "$0")" && pwd)/db-ctl.sh"
