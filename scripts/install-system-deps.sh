#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only when they are missing.
# Each entry is "command-to-look-for:debian-package".
set -euo pipefail

needed=()
# Commands the tests run, and the Debian package that provides each.
DEPS=(
  redis-server:redis-server   # Redis Streams bus tests (a real server on 127.0.0.1)
  Xvfb:xvfb                   # a real X server for the desktop-pointer effector
  xdotool:xdotool             # reads the pointer position back
  chromium:chromium           # the dashboard's browser tests (Playwright drives it)
)
for pair in "${DEPS[@]}"; do
  command_name=${pair%%:*}
  package=${pair#*:}
  command -v "$command_name" >/dev/null 2>&1 || needed+=("$package")
done

if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing system packages: ${needed[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${needed[@]}"
