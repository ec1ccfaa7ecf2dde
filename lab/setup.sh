#!/usr/bin/env bash
# Idempotent setup for xdp-chain-lab on Debian 12 (bookworm): system packages, npm dependencies,
# bpffs. Safe to run again: it installs only what is missing. Needs root (apt, bpffs, XDP).
set -euo pipefail
cd "$(dirname "$0")/.."

say()  { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '  fix: %s\n' "$2" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "setup needs root: it installs Debian packages, mounts bpffs and the lab attaches XDP programs." \
  "run it as root, e.g. \`sudo npm run setup\` (and the lab itself with sudo)."
command -v apt-get >/dev/null || fail "apt-get not found: the lab's setup targets Debian 12 (bookworm)." \
  "install the packages listed in lab/setup.sh by hand on other distributions."
if [ -r /etc/os-release ]; then
  . /etc/os-release
  [ "${VERSION_CODENAME:-}" = bookworm ] || say "warning: this is ${PRETTY_NAME:-unknown}, not Debian 12; continuing."
fi

# Tools the lab drives (never re-implements), grouped by who needs them.
PACKAGES=(
  # BPF toolchain and loaders
  clang llvm libbpf-dev bpftool xdp-tools libxdp-dev gcc-multilib make pkg-config
  # test environment and traffic
  iproute2 ethtool iperf3 iputils-ping util-linux procps kmod
  # kernels and VMs
  qemu-system-x86 qemu-utils debootstrap e2fsprogs zstd xz-utils cpio busybox-static dpkg-dev
  ca-certificates
  # building kernels from source (kernel.org and source providers); gcc-11 and patch for old
  # trees GCC 12 does not build (kernels/toolchains.json, kernels/patches/)
  bc bison flex libelf-dev libssl-dev dwarves rsync gcc-11 patch
  # chartjs-node-canvas builds `canvas` from source
  build-essential python3 libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev librsvg2-dev
  # perf counters where the machine has a PMU
  linux-perf
  # the HTML report test loads the page in headless Chromium
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq || fail "apt-get update failed" "check the machine reaches its Debian mirror."
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}" "run \`apt-get install ${missing[*]}\` to see apt's message."
else
  say "Debian packages: all present"
fi

# tcx (the kernel's own multi-program TC attach, 6.6+) needs bpftool 7.4+, libbpf 1.3+ and a tc that
# knows it; bookworm has bpftool 7.1, libbpf 1.1 and iproute2 6.1. bookworm-backports builds the
# newer ones for bookworm: take exactly those four from there, everything else stays bookworm's.
BACKPORTS=(bpftool iproute2 libbpf1 libbpf-dev)
if [ "${VERSION_CODENAME:-bookworm}" = bookworm ]; then
  src=/etc/apt/sources.list.d/xcl-bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    say "adding bookworm-backports to apt (for ${BACKPORTS[*]})"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$src"
    apt-get -o DPkg::Lock::Timeout=600 update -qq || fail "apt-get update failed after adding bookworm-backports" "check the machine reaches deb.debian.org, or remove $src."
  fi
  if ! bpftool version 2>/dev/null | head -1 | grep -Eq 'v7\.([4-9]|[1-9][0-9])|v([89]|[1-9][0-9])\.'; then
    say "installing ${BACKPORTS[*]} from bookworm-backports"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORTS[@]}" >/dev/null \
      || fail "apt-get install -t bookworm-backports failed for: ${BACKPORTS[*]}" "run \`apt-get install -t bookworm-backports ${BACKPORTS[*]}\` to see apt's message."
  fi
fi

# The native baseline builds a kernel module with the compiler its kernel was built with: Debian 11's
# 5.10 with gcc-10, which Debian 12 does not have. bullseye's gcc-10 installs on bookworm as four
# packages (gcc-10, cpp-10, gcc-10-base, libgcc-10-dev) and nothing else; bullseye is pinned below
# bookworm (priority 100), so no other package ever comes from it.
if [ "${VERSION_CODENAME:-bookworm}" = bookworm ] && ! command -v gcc-10 >/dev/null; then
  src=/etc/apt/sources.list.d/xcl-bullseye.sources
  pin=/etc/apt/preferences.d/xcl-bullseye
  if ! grep -rqsE '(^|[[:space:]])bullseye([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    say "adding bullseye to apt, pinned below bookworm (for gcc-10, the compiler of Debian 11's 5.10)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bullseye' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$src"
    printf '%s\n' 'Package: *' 'Pin: release n=bullseye' 'Pin-Priority: 100' > "$pin"
    apt-get -o DPkg::Lock::Timeout=600 update -qq || fail "apt-get update failed after adding bullseye" "check the machine reaches deb.debian.org, or remove $src and $pin."
  fi
  say "installing gcc-10 from bullseye"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends -t bullseye gcc-10 >/dev/null \
    || fail "apt-get install -t bullseye gcc-10 failed" "run \`apt-get install -t bullseye gcc-10\` to see apt's message (the native baseline on 5.10 needs it; everything else works without)."
fi

# Node.js: the lab needs 20 or newer (commander, execa, vitest).
if ! command -v node >/dev/null; then
  say "installing Debian's nodejs and npm"
  apt-get install -y -qq nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node.js $(node --version) is too old; the lab needs Node.js 20 or newer." \
  "install Node.js 20+ (e.g. from NodeSource or nvm) and run setup again."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ package.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error || fail "npm ci failed" "read npm's message above; canvas needs the -dev packages listed in lab/setup.sh."
else
  say "npm dependencies: up to date"
fi

# bpffs: pinning (chains, dispatcher, maps shared between stages) needs it.
if ! mount | grep -q ' /sys/fs/bpf type bpf '; then
  mount -t bpf bpf /sys/fs/bpf || fail "cannot mount bpffs on /sys/fs/bpf" "the kernel needs CONFIG_BPF_SYSCALL; run \`mount -t bpf bpf /sys/fs/bpf\` to see why."
fi

say "ready: $(uname -r), clang $(clang --version | head -1 | grep -o '[0-9][0-9.]*' | head -1), $(bpftool version | head -1), node $(node --version)"
