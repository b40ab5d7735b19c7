#!/usr/bin/env bash
# Builds gauntlet's container image from a gauntlet binary, with nothing pulled from a registry:
# `FROM scratch` plus the binary, the shared libraries it links (and their loader), CA
# certificates, a non-root user (uid/gid 65532) and a writable /work.
#
#   deploy/image/build.sh [BINARY] [TAG]
#
# BINARY defaults to target/release/gauntlet (cargo build --release); TAG to
# gauntlet:<version>. STRIP=0 keeps the binary's debug line tables (bigger image, file:line in
# panic backtraces). Prints the tag and the image's size; then checks that the image runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${1:-target/release/gauntlet}
if [[ ! -x $binary ]]; then
  echo "build.sh: $binary is not an executable; build it first (cargo build --release)" >&2
  exit 2
fi
version=$("$binary" --version | awk '{print $2}')
tag=${2:-gauntlet:$version}
command -v docker >/dev/null || { echo "build.sh: docker is not installed" >&2; exit 3; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

mkdir -p "$ctx/root/usr/bin" "$ctx/root/etc/ssl/certs" "$ctx/root/tmp" "$ctx/work"
chmod 1777 "$ctx/root/tmp"
cp "$binary" "$ctx/root/usr/bin/gauntlet"
if [[ ${STRIP:-1} != 0 ]]; then
  if command -v strip >/dev/null; then
    strip --strip-debug "$ctx/root/usr/bin/gauntlet"
  else
    echo "build.sh: no strip (binutils) here: the binary keeps its debug line tables" >&2
  fi
fi

# Every library the dynamic loader resolves, and the loader itself, at the path it is asked
# for (a symlink is copied as the file it points to).
libs=$(ldd "$binary" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}')
for lib in $libs; do
  mkdir -p "$ctx/root$(dirname "$lib")"
  cp -L "$lib" "$ctx/root$lib"
done

# rustls-native-certs reads the system bundle; without it https:// targets cannot be trusted.
ca=/etc/ssl/certs/ca-certificates.crt
if [[ ! -f $ca ]]; then
  echo "build.sh: $ca is missing (apt-get install ca-certificates)" >&2
  exit 3
fi
cp "$ca" "$ctx/root/etc/ssl/certs/ca-certificates.crt"

# glibc looks users and hosts up through NSS; the files and dns backends live in libc itself.
cat >"$ctx/root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
gauntlet:x:65532:65532:gauntlet:/work:/sbin/nologin
PASSWD
cat >"$ctx/root/etc/group" <<'GROUP'
root:x:0:
gauntlet:x:65532:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ctx/root/etc/nsswitch.conf"

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY root/ /
# Created by this COPY, so owned by the user (a folder made by the first would be root's).
COPY --chown=65532:65532 work /work
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /work
USER 65532:65532
LABEL org.opencontainers.image.title="gauntlet" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.description="Load-testing and SLA verification for OpenAI-compatible LLM gateways"
ENTRYPOINT ["/usr/bin/gauntlet"]
CMD ["--help"]
DOCKERFILE

# The classic builder: it needs no BuildKit or buildx, and `FROM scratch` pulls nothing.
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.log" || {
  cat "$ctx/build.log" >&2
  exit 3
}
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "image: $tag ($(numfmt --to=iec --suffix=B "$size"), $size bytes)"
# It runs: the loader finds every library, and the user is not root.
docker run --rm "$tag" --version
