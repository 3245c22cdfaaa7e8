#!/bin/sh
# Builds the root filesystem of Larder's runtime image into DIR: the binary, the shared
# libraries it loads (as ldd resolves them on this machine), CA certificates, and passwd/group
# entries for the non-root user 65532. No base image is pulled: the Containerfile copies DIR
# into an empty (scratch) image.
#   deploy/image/build-rootfs.sh PATH/TO/larder DIR
set -eu
bin=$1
out=$2
rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp" "$out/repo"
chmod 1777 "$out/tmp"
install -m 0755 "$bin" "$out/usr/local/bin/larder"
# The loader and every library the binary needs, at the paths ldd resolves.
for lib in $(ldd "$bin" | awk '/=> \//{print $3} /^\s*\//{print $1}'); do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done
if [ -e /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
fi
echo 'larder:x:65532:65532:larder:/tmp:/sbin/nologin' >"$out/etc/passwd"
echo 'larder:x:65532:' >"$out/etc/group"
