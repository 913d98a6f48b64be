#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 machine, as root: the Debian packages that
# DIRAC's compiled dependencies, the private MariaDB and the production-like stack's runit need,
# and the headless Chromium (with the fonts its page checks are measured in) that
# tests/unit/test_docs.py opens the built documentation in; then .venv with the pinned Python
# packages and this package (editable). Idempotent: a second run only checks stamps.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="mariadb-server mariadb-client libmariadb-dev pkg-config swig libssl-dev gcc openssl chromium fonts-liberation"
# runit alone: its recommended runit-init would replace the machine's init
RUNIT_PACKAGE="runit"
DIRAC_VERSION=9.1.22
VENV=.venv

missing=""
for pkg in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
dpkg-query -W -f='${Status}' "$RUNIT_PACKAGE" 2>/dev/null | grep -q "install ok installed" || missing_runit=1
if [ -n "$missing" ] || [ -n "${missing_runit:-}" ]; then
  echo "bootstrap: installing Debian packages:$missing${missing_runit:+ $RUNIT_PACKAGE}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The packages must not start system services (MariaDB, runit): the project runs its own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.calibration
  [ -e /usr/sbin/policy-rc.d ] || { cp /usr/sbin/policy-rc.d.calibration /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1; }
  [ -z "$missing" ] || apt-get install -y -qq $missing >/dev/null
  [ -z "${missing_runit:-}" ] || apt-get install -y -qq --no-install-recommends "$RUNIT_PACKAGE" >/dev/null
  [ -n "${added_policy:-}" ] && rm -f /usr/sbin/policy-rc.d
  rm -f /usr/sbin/policy-rc.d.calibration
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  }
fi

stamp_value=$(cat requirements/pinned.txt setup.cfg setup.py scripts/bootstrap.sh | sha256sum | cut -c1-16)
stamp="$VENV/.bootstrap-$stamp_value"
if [ ! -e "$stamp" ]; then
  echo "bootstrap: installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  "$VENV/bin/python" -m pip install -q -r requirements/pinned.txt
  # DIRAC requires gfal2-python, which does not build on Debian 12: install DIRAC without
  # dependencies; requirements/pinned.txt pins all the others (and the test and docs tools).
  "$VENV/bin/python" -m pip install -q --no-deps "DIRAC==$DIRAC_VERSION"
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  rm -f "$VENV"/.bootstrap-*
  touch "$stamp"
fi
