#!/usr/bin/env bash
# Installs what the real-browser console test needs, from Debian's packages: Chromium (driven by
# Playwright with executable_path=/usr/bin/chromium; Playwright's own browser download is never
# used) and a CJK font so that screenshots show Chinese. Safe to run again; does nothing when
# both are present. Needs root (CI runs as root) or sudo.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qiE 'wqy|noto (sans|serif) cjk' || need+=(fonts-wqy-microhei)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -qq >/dev/null 2>&1
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
}
echo "installed: ${need[*]}"
