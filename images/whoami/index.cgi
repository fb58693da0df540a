#!/bin/sh
# Answers like traefik/whoami: who served the request, and what the request was.
echo "Content-Type: text/plain"
echo ""
echo "Hostname: $(/bin/busybox hostname)"
/bin/busybox ip -o -4 addr show | /bin/busybox awk '{split($4, a, "/"); print "IP: " a[1]}'
echo "RemoteAddr: ${REMOTE_ADDR}:${REMOTE_PORT}"
echo "${REQUEST_METHOD} ${REQUEST_URI} ${SERVER_PROTOCOL}"
/bin/busybox env | /bin/busybox sed -n 's/^HTTP_\([^=]*\)=\(.*\)$/\1: \2/p' | /bin/busybox sort
