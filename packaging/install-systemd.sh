#!/bin/sh
# Installs pharmatrace as a systemd service from this source tree: a system user, a virtualenv in
# /opt/pharmatrace, the unit, an example configuration and a new key-encryption passphrase (kept
# if there is one). Then: sudo systemctl enable --now pharmatrace
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
id pharmatrace >/dev/null 2>&1 ||
    useradd --system --home-dir /var/lib/pharmatrace --no-create-home \
        --shell /usr/sbin/nologin pharmatrace
python3 -m venv /opt/pharmatrace
/opt/pharmatrace/bin/pip install --quiet "$here"
install -d -m 0755 /etc/pharmatrace
[ -e /etc/pharmatrace/pharmatrace.toml ] ||
    install -m 0644 "$here/packaging/pharmatrace.toml" /etc/pharmatrace/pharmatrace.toml
[ -e /etc/pharmatrace/tls/server.pem ] ||
    /opt/pharmatrace/bin/pharmatrace certs init /etc/pharmatrace/tls --host "$(hostname -f)" \
        --host localhost --host 127.0.0.1
chgrp -R pharmatrace /etc/pharmatrace/tls && chmod 0750 /etc/pharmatrace/tls
chmod 0640 /etc/pharmatrace/tls/*-key.pem
if [ ! -e /etc/pharmatrace/kek-passphrase ]; then
    umask 077
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > /etc/pharmatrace/kek-passphrase
fi
install -m 0644 "$here/packaging/pharmatrace.service" /etc/systemd/system/pharmatrace.service
/opt/pharmatrace/bin/pharmatrace config check /etc/pharmatrace/pharmatrace.toml
systemctl daemon-reload
echo "installed; start it with: systemctl enable --now pharmatrace"
