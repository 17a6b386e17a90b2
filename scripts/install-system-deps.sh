#!/usr/bin/env bash
# Debian packages the tests talk to: yaz (yaz-client, the Z39.50/SRU peer), idzebra-2.0 (Zebra,
# the reference server), chromium (browser tests) and CJK fonts for readable screenshots.
set -euo pipefail
need=()
command -v yaz-client >/dev/null 2>&1 || need+=(yaz)
command -v zebraidx >/dev/null 2>&1 || need+=(idzebra-2.0)
[ -x /usr/bin/chromium ] || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
