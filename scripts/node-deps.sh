#!/usr/bin/env bash
# Install the Node tools the tests and the local stack need (firebase-tools, for the Firebase Auth
# emulator) into ./node_modules from package-lock.json, only when they are missing or stale.
# Silent and instant when already installed. Never deployed: Cloud Functions bundles are Python.
set -euo pipefail
cd "$(dirname "$0")/.."

wanted="$(sed -n 's/.*"firebase-tools": *"\([^"]*\)".*/\1/p' package.json | head -n1)"
installed_manifest="node_modules/firebase-tools/package.json"
if [ -x node_modules/.bin/firebase ] && [ -f "$installed_manifest" ] &&
  grep -q "\"version\": *\"${wanted}\"" "$installed_manifest"; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: nodejs npm"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "firebase-tools ${wanted} needs Node.js >= 20; found $(node --version)" >&2
  exit 1
fi

echo "installing firebase-tools ${wanted} into node_modules (about half a minute)"
# `npm ci` installs exactly the lockfile; --ignore-scripts is safe here because firebase-tools needs
# no install script for the Auth emulator (it is pure JavaScript).
npm ci --no-audit --no-fund --loglevel=error --ignore-scripts >/dev/null
test -x node_modules/.bin/firebase
