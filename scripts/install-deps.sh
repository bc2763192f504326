#!/usr/bin/env bash
# Installs what berth needs on Debian 12 (as root), skipping what is present.
#   scripts/install-deps.sh          what berthd needs to build and run
#   scripts/install-deps.sh --test   plus the reference tools the tests compare against
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt "$need_node_major" ]; then
  echo "berth needs Node.js >= $need_node_major (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Debian 12's own nodejs is 18; install Node 20 first (e.g. the NodeSource or nvm build)." >&2
  exit 1
fi

# Build tools for the small C addon (native/berth_native.c), and the runtime.
pkgs=(gcc g++ make python3 runc iptables tini golang-github-docker-docker-dev)
if [ "${1:-}" = "--test" ]; then
  # The reference implementations the tests compare berth against, and the
  # static busybox every test image is made from (nothing is pulled from the internet).
  pkgs+=(docker.io docker-registry skopeo crun busybox-static attr wrk zstd xz-utils bzip2)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing docker.io must not start a dockerd (it would create docker0 and
  # take /var/run/docker.sock): a policy-rc.d that refuses service starts.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# Node dependencies and the native addon (npm runs node-gyp for binding.gyp).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f build/Release/berth_native.node ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
