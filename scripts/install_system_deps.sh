#!/usr/bin/env bash
# Installs Debian's QGIS stack if any package is missing; does nothing otherwise.
# Xvfb (for the desktop-QGIS tests) is optional: if it cannot be installed, those tests skip.
set -euo pipefail
PKGS="qgis python3-qgis python3-gdal python3-rasterio python3-venv gdal-bin"
OPTIONAL="xvfb xauth"
missing_of() {
  local out=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
  done
  echo "$out"
}
missing="$(missing_of $PKGS)"
optional="$(missing_of $OPTIONAL)"
[ -z "$missing$optional" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ -n "$missing" ]; then
  echo "Installing Debian packages:$missing"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
if [ -n "$optional" ]; then
  { $SUDO apt-get install -y -qq --no-install-recommends $optional || \
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $optional; }; } \
    || echo "warning: could not install$optional; the desktop-QGIS tests will be skipped" >&2
fi
