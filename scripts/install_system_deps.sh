#!/usr/bin/env bash
# Installs Debian's QGIS stack if any package is missing; does nothing otherwise.
set -euo pipefail
PKGS="qgis python3-qgis python3-gdal python3-rasterio python3-venv gdal-bin xvfb xauth"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "Installing Debian packages:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
