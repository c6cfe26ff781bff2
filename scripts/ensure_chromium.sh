#!/usr/bin/env bash
# Installs Debian's chromium for the browser test when it is missing; does nothing when it is there.
# Never fails the caller: without chromium (no root, no apt, no network) the browser test skips and says why.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no apt-get here; the browser test will skip" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "ensure_chromium: not root and no password-less sudo; the browser test will skip" >&2
    exit 0
  fi
fi
echo "ensure_chromium: installing Debian's chromium (once)" >&2
export DEBIAN_FRONTEND=noninteractive
# Install from the current lists first; refresh them only when that fails (stale or empty lists).
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null 2>&1 &&
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
    echo "ensure_chromium: apt-get could not install chromium; the browser test will skip" >&2
fi
exit 0
