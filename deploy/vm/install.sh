#!/bin/sh
# Installs Larder on a VM from an unpacked release (bin/larder, deploy/vm/): the binary, the
# systemd units, a dedicated system user, /etc/larder/larder.env (kept if present) and the repo
# directory; then enables the units given (default: the online server and the materialization
# timer). ROOT=/some/dir installs into that directory instead of / (and enables nothing).
#   sh deploy/vm/install.sh [UNIT...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
release=$(cd "$here/../.." && pwd)
ROOT=${ROOT:-}
units=${*:-larder-serve.service larder-materialize.timer}

install -d "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/etc/larder"
install -m 0755 "$release/bin/larder" "$ROOT/usr/local/bin/larder"
for f in "$here"/*.service "$here"/*.timer; do
  install -m 0644 "$f" "$ROOT/etc/systemd/system/$(basename "$f")"
done
[ -e "$ROOT/etc/larder/larder.env" ] || install -m 0640 "$here/larder.env" "$ROOT/etc/larder/larder.env"
install -d -m 0750 "$ROOT/var/lib/larder/repo"

if [ -z "$ROOT" ]; then
  getent passwd larder >/dev/null || useradd --system --home-dir /var/lib/larder --shell /usr/sbin/nologin larder
  chown -R larder:larder /var/lib/larder
  chgrp larder /etc/larder/larder.env
  systemctl daemon-reload
  # shellcheck disable=SC2086
  systemctl enable --now $units
fi
