#!/usr/bin/env bash
# The Debian packages PolicyDesk needs beside Python, installed only when missing.
#   build: the headers python-ldap compiles against (LDAP sign-in).
#   test:  also the test suite's own servers and browser: OpenLDAP's slapd, Chromium.
set -euo pipefail
packages=(libldap2-dev libsasl2-dev)
if [ "${1:-build}" = "test" ]; then
  packages+=(slapd ldap-utils chromium chromium-driver)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
# slapd's own service is not used (the tests start theirs on a free port); noninteractive keeps
# its package configuration from asking questions.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
