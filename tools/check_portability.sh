#!/usr/bin/env bash
# The platform-specific C of kengine_ext (crc32c.c's CPU dispatch, portable.h, wallclock.h)
# built for every platform the release configuration names, with zig cc (PyPI's ziglang), and
# run where this x86-64 Linux machine can run it. `make check-portability` runs it; .ci/run too.
#
#   target                   built    run here                      path it checks
#   x86_64-linux-gnu.2.5     yes      natively                      SSE4.2 + portable CRC, TSC clock
#   x86_64-linux-musl        yes      natively (static)             musllinux's libc
#   aarch64-linux-musl       yes      qemu-aarch64 (static)         ARMv8 CRC via getauxval, portable
#   aarch64-linux-gnu.2.17   yes      no (no AArch64 glibc here)    glibc headers for the same
#   x86_64-macos, aarch64-macos  yes  no                            sysctl / compile-time CRC dispatch
#   aarch64-freebsd          yes      no                            elf_aux_info
#   x86_64-windows-gnu       yes      no                            portable.h's Windows branch (MinGW
#                                                                   headers; MSVC is never tried)
# plus the whole extension (Cython's C) compiled for aarch64-linux-gnu.2.17.
#
# Needs: the dev venv ($VENV, default .venv) with ziglang and Cython, and qemu-aarch64
# (Debian/Ubuntu: apt-get install qemu-user). Missing tools fail the check, never skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
py=$VENV/bin/python

fail() { echo "check_portability: error: $*" >&2; exit 1; }

[[ -x $py ]] || fail "$py not found: run make setup first"
"$py" -c 'import ziglang' 2>/dev/null || "$py" -m pip install -q --group pyproject.toml:release
command -v qemu-aarch64 >/dev/null || fail "qemu-aarch64 not found: it runs the AArch64 build \
of the CRC32C dispatch; install it (Debian/Ubuntu: apt-get install qemu-user)"

out=$(mktemp -d "${TMPDIR:-/tmp}/kengine-portability.XXXXXX")
trap 'rm -rf "$out"' EXIT
zig() { "$py" -m ziglang cc "$@"; }
sources=(tools/portability/selftest.c kengine_ext/crc32c.c)
flags=(-std=gnu11 -O2 -Wall -Wextra -Werror -Wno-unused-function -Ikengine_ext)

build() {  # number, target, extra flags...
  local n=$1 target=$2; shift 2
  zig -target "$target" "${flags[@]}" "$@" -o "$out/selftest-$n-$target" "${sources[@]}"
  echo "built   $target $*"
}

run() {  # label, expected implementation, command...
  local label=$1 expected=$2; shift 2
  local log
  if ! log=$("$@" "$expected" 2>&1); then
    echo "$log" >&2
    fail "$label: the self-test failed"
  fi
  echo "ran     $label: $(echo "$log" | tr '\n' ' ')"
}

# The whole extension's C for AArch64 Linux: catches x86-only code outside the dispatch. It is
# the C that `make build` generated (kengine_ext/_core.c); the Python headers are this
# machine's (x86-64 Linux, LP64 like AArch64 Linux). Compile only.
[[ kengine_ext/_core.c -nt kengine_ext/_core.pyx ]] || fail "kengine_ext/_core.c is missing \
or older than _core.pyx: run make build first"
pyinc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# The longest build (Cython's C is megabytes): started first, alongside the self-tests. -O0:
# the compiler's front end is what meets x86-only code (intrinsics, target attributes), and
# -O2 took 3.4 times as long (135 s against 39 s here) to say the same.
zig -target aarch64-linux-gnu.2.17 -O0 -fPIC -fno-strict-aliasing -Wno-unused-function \
  -Ikengine_ext -I"$pyinc" -c kengine_ext/_core.c -o "$out/_core-aarch64.o" &
core_pid=$!

# The builds are independent: all start at once and each is waited for by name, so one that
# fails still fails the check. Output names are numbered: two targets differ only in flags.
targets=(
  "x86_64-linux-gnu.2.5"
  "x86_64-linux-musl -static"
  "aarch64-linux-musl -static"
  "aarch64-linux-gnu.2.17"
  "x86_64-macos"
  "aarch64-macos"                 # Apple's default CPU has CRC: the compile-time path
  "aarch64-macos -mcpu=generic"   # a CPU that may lack it: the sysctl path
  "aarch64-freebsd"               # elf_aux_info
  "x86_64-windows-gnu"
)
pids=()
for i in "${!targets[@]}"; do
  # shellcheck disable=SC2086  # the target and its flags, one word each
  build "$i" ${targets[$i]} &
  pids+=($!)
done
for i in "${!targets[@]}"; do
  wait "${pids[$i]}" || fail "zig cc failed for ${targets[$i]}"
done

if grep -qw sse4_2 /proc/cpuinfo; then native=sse4.2; else native=software; fi
run "x86_64 glibc 2.5 build" "$native" "$out/selftest-0-x86_64-linux-gnu.2.5"
KENGINE_CRC32C=software run "x86_64 glibc 2.5 build, forced portable" software \
  "$out/selftest-0-x86_64-linux-gnu.2.5"
run "x86_64 musl build" "$native" "$out/selftest-1-x86_64-linux-musl"
run "aarch64 musl build under qemu (-cpu max: has CRC)" armv8-crc \
  qemu-aarch64 -cpu max "$out/selftest-2-aarch64-linux-musl"
KENGINE_CRC32C=software run "aarch64 musl build under qemu, forced portable" software \
  qemu-aarch64 -cpu max "$out/selftest-2-aarch64-linux-musl"

wait "$core_pid" || fail "zig cc failed to compile kengine_ext/_core.c for aarch64-linux-gnu.2.17"
echo "built   kengine_ext/_core.c for aarch64-linux-gnu.2.17 (compile only)"
echo "check_portability: ok"
