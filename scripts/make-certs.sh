#!/usr/bin/env bash
# make-certs.sh DIR: a throw-away CA and one node certificate for `localhost`, for
# examples/tls.yaml and tests. Real fleets use certificates from their own CA.
set -euo pipefail
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 \
	-subj "/CN=psfleet test CA" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr \
	-subj "/CN=localhost" >/dev/null 2>&1
printf 'subjectAltName=DNS:localhost\n' >node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem \
	-days 30 -extfile node.ext >/dev/null 2>&1
rm -f node.csr node.ext ca.srl
chmod 600 ca.key node.key
echo "make-certs: wrote $(pwd)/{ca.pem,node.pem,node.key}"
