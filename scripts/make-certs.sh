#!/usr/bin/env bash
# make-certs.sh DIR [NAME...]: a throw-away CA and one node certificate for the DNS
# names given (default: psfleet-node localhost), for examples/tls.yaml and tests.
# The first name is also the certificate's CN. Clients dialing an IP address set
# security.tls_server_name to one of the names (docs/security.md). Real fleets use
# certificates from their own CA.
set -euo pipefail
dir=${1:-certs}
shift || true
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	names=(psfleet-node localhost)
fi
san=""
for n in "${names[@]}"; do
	san="${san:+$san,}DNS:$n"
done
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 \
	-subj "/CN=psfleet test CA" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr \
	-subj "/CN=${names[0]}" >/dev/null 2>&1
printf 'subjectAltName=%s\n' "$san" >node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem \
	-days 30 -extfile node.ext >/dev/null 2>&1
rm -f node.csr node.ext ca.srl
chmod 600 ca.key node.key
echo "make-certs: wrote $(pwd)/{ca.pem,node.pem,node.key} for ${names[*]}"
