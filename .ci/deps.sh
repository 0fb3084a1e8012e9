#!/usr/bin/env bash
# Installs the Debian packages ibkr-mcp needs to build and test, if any are
# missing. As root it runs apt-get (update first: a fresh machine has no
# package lists); otherwise it names the packages and stops.
set -eu

pkgs="gcc make cmake pkg-config liblua5.4-dev libcjson-dev libuv1-dev libsodium-dev libedit-dev lua-unit tzdata"
if [ "${1:-}" = "--with-node" ]; then
  command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
  command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi
# The libFuzzer targets (tests/fuzz): clang-14 and its runtimes (libFuzzer,
# ASan, UBSan).
if [ "${1:-}" = "--with-fuzz" ]; then
  pkgs="$pkgs clang-14 libclang-rt-14-dev"
fi

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # nodejs and npm may come from outside Debian; a working command is enough.
    case "$p" in
      nodejs) command -v node >/dev/null 2>&1 && continue ;;
      npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    missing="$missing $p"
  fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = "0" ]; then
  echo "ibkr-mcp: installing missing packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >&2
else
  echo "ibkr-mcp: missing Debian packages:$missing" >&2
  echo "ibkr-mcp: install them with: sudo apt-get update && sudo apt-get install$missing" >&2
  exit 1
fi
