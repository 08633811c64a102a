#!/usr/bin/env bash
# make pi-check: prove the README's Raspberry Pi install on the Pi's platforms, under emulation.
#
# For each architecture (default: arm64 armhf), in a Debian root built with debootstrap and run with qemu-user
# (Debian's qemu 10, from bookworm-backports on a bookworm host):
#   1. build the root once and keep it (PI_CHECK_CACHE, default /var/cache/spotter-pi/<suite>-<arch>);
#   2. mount /proc, /sys and /dev into it (LiteRT's XNNPACK reads /sys; without it LiteRT falls back to reference
#      kernels and scores move by up to 0.02), set QEMU_CPU (cortex-a72, a Pi 4, for arm64; cortex-a7 for armhf);
#   3. copy the working tree's files that git knows or would track (tracked plus untracked-but-not-ignored: no
#      .venv, runs/ or build output) into it, and install as the README's "On a Raspberry Pi" section says: the
#      apt line, then the venv and `pip install .` (32-bit: --system-site-packages over Debian's numpy/scipy/cffi);
#   4. run both demos and compare their JSON lines with the same commands run here on x86 (.venv, `make
#      install-runtime`): labels, events, offsets, starts, ends and durations equal, scores within
#      PI_CHECK_SCORE_TOL (default 0.01); timestamps ignored.
# Exits non-zero with the reason on the first failure. Needs root (debootstrap, chroot, mounts) and, on first use,
# the network (Debian's mirror and PyPI). Each emulated step runs under `nice -n 15`.
#
# usage: pi/pi-check.sh [arm64] [armhf]         (make pi-check ARCHES="arm64")
# environment: PI_CHECK_SUITE (bookworm; trixie for Python 3.13), PI_CHECK_CACHE, PI_CHECK_MIRROR,
#              PI_CHECK_SCORE_TOL, PI_CHECK_X86 (x86 venv bin folder, default .venv/bin), PI_CHECK_KEEP=1 (keep
#              the copy and its venv inside the root after the run)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${PI_CHECK_SUITE:-bookworm}
CACHE=${PI_CHECK_CACHE:-/var/cache/spotter-pi}
MIRROR=${PI_CHECK_MIRROR:-http://deb.debian.org/debian}
TOL=${PI_CHECK_SCORE_TOL:-0.01}
X86_BIN=${PI_CHECK_X86:-$REPO/.venv/bin}
ARCHES=("$@")
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(arm64 armhf)
NICE=(nice -n 15)

# The demos (README: `make demo`, and the sound-event demo), as arguments to `spotter listen`.
DEMOS=(
    "keywords|--input demo/keywords.wav --quiet"
    "events|--model events --input demo/events.wav --quiet"
)

# The README's Pi install, per architecture: the apt line's packages and the shell commands after it. Each
# command must appear verbatim in README.md, so the check follows the README or fails when they drift apart.
readme_apt() { echo "libportaudio2 python3-venv"; }
readme_apt_32() { echo "libportaudio2 python3-venv python3-numpy python3-scipy python3-cffi cmake ninja-build g++ python3-dev"; }
# What the root starts with (a Pi OS image has python3). The README's apt line is then run in it by apt-get on
# every check (32-bit: Debian's numpy, scipy and cffi), and what it adds stays in the cached root; debootstrap's
# --include cannot be given them, as it does not resolve virtual packages (python3-pycparser needs python3-ply-lex-3.10).
base_packages() { echo "python3,ca-certificates,libportaudio2,python3-venv"; }
readme_install() {
    case $1 in
        arm64) echo "python3 -m venv .venv && .venv/bin/pip install ." ;;
        armhf) echo "python3 -m venv --system-site-packages .venv && linux32 .venv/bin/pip install ." ;;
    esac
}

say() { printf 'pi-check: %s\n' "$*" >&2; }
die() { printf 'pi-check: FAILED: %s\n' "$*" >&2; exit 1; }
since() { echo "$(( $(date +%s) - $1 )) s"; }

[ "$(id -u)" = 0 ] || exec sudo --preserve-env=PI_CHECK_SUITE,PI_CHECK_CACHE,PI_CHECK_MIRROR,PI_CHECK_SCORE_TOL,PI_CHECK_X86,PI_CHECK_KEEP,PI_CHECK_ROOTS_ONLY,PI_CHECK_README,PI_CHECK_CPU_ARM64,PI_CHECK_CPU_ARMHF "$0" "$@"

for arch in "${ARCHES[@]}"; do
    case $arch in arm64|armhf) ;; *) die "unknown architecture '$arch' (arm64 or armhf)" ;; esac
done

# ---- host: qemu-user 10 with binfmt_misc, debootstrap ----------------------------------------------------------
qemu_major() { "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1; }
host_setup() {
    local need=0
    command -v debootstrap >/dev/null || need=1
    for q in qemu-aarch64-static qemu-arm-static; do
        command -v $q >/dev/null && [ "$(qemu_major $q)" -ge 10 ] 2>/dev/null || need=1
    done
    if [ $need = 1 ]; then
        . /etc/os-release
        [ "${VERSION_CODENAME:-}" = bookworm ] || die "needs debootstrap and qemu-user-static >= 10 (Debian's, from bookworm-backports on bookworm); install them and rerun"
        say "installing qemu-user-static and debootstrap from bookworm-backports"
        if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
            printf '%s\n' "Types: deb" "URIs: $MIRROR" "Suites: bookworm-backports" "Components: main" \
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > /etc/apt/sources.list.d/bookworm-backports.sources
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-user-static debootstrap >/dev/null
    fi
    local major
    major=$(qemu_major qemu-aarch64-static)
    [ "$major" -ge 10 ] || die "qemu-aarch64-static is version $major; 10 or newer is needed (bookworm-backports)"
    # binfmt_misc: systemd registers qemu's formats at boot; in a container or a machine without systemd, do it here
    [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        || die "cannot mount binfmt_misc (a container without it cannot run foreign binaries)"
    for fmt in aarch64 arm; do
        if [ ! -e /proc/sys/fs/binfmt_misc/qemu-$fmt ]; then
            [ -f /usr/lib/binfmt.d/qemu-$fmt.conf ] || die "no /usr/lib/binfmt.d/qemu-$fmt.conf (install qemu-user-binfmt)"
            /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-$fmt.conf || die "cannot register qemu-$fmt with binfmt_misc"
        fi
        grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-$fmt || die "binfmt_misc entry qemu-$fmt is disabled"
    done
    say "host: $(qemu-aarch64-static --version | head -1), debootstrap $(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null || echo '?')"
}

# ---- the emulated root: debootstrap --foreign, then the second stage under qemu --------------------------------
ROOT=
MOUNTED=()
unmount_all() {
    local i
    for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do
        umount -R "${MOUNTED[$i]}" 2>/dev/null || umount -R -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
    MOUNTED=()
}
# mounts left inside a root by a run that was killed (-9): take them away before anything else touches the root
stale_mounts() {
    local m
    for m in $(awk -v r="$ROOT/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
    done
    ! awk -v r="$ROOT/" 'index($2, r) == 1 {found=1} END {exit !found}' /proc/mounts \
        || die "cannot unmount what an earlier run left mounted under $ROOT"
}
trap unmount_all EXIT
trap 'exit 130' INT TERM HUP

mount_root() {
    mount -t proc proc "$ROOT/proc"; MOUNTED+=("$ROOT/proc")
    mount --rbind /sys "$ROOT/sys"; mount --make-rslave "$ROOT/sys"; MOUNTED+=("$ROOT/sys")
    mount --rbind /dev "$ROOT/dev"; mount --make-rslave "$ROOT/dev"; MOUNTED+=("$ROOT/dev")
}

build_root() {
    local arch=$1 pkgs
    pkgs=$(base_packages "$arch")
    local stamp="$SUITE $arch $pkgs"
    if [ -f "$ROOT/.pi-check-ready" ] && [ "$(cat "$ROOT/.pi-check-ready")" = "$stamp" ]; then
        say "$arch: reusing the root in $ROOT"
        return
    fi
    local t0; t0=$(date +%s)
    say "$arch: building a Debian $SUITE root in $ROOT (first run only; several minutes under emulation)"
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    "${NICE[@]}" debootstrap --foreign --variant=minbase --arch="$arch" --include="$pkgs" "$SUITE" "$ROOT" "$MIRROR" \
        > "$ROOT.debootstrap.log" 2>&1 || die "debootstrap (first stage) failed: see $ROOT.debootstrap.log"
    # the static emulator inside the root too, for hosts whose binfmt entry does not carry the F flag
    cp "$(command -v "$(qemu_for "$arch")")" "$ROOT/usr/bin/"
    "${NICE[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin QEMU_CPU="$(cpu_for "$arch")" \
        chroot "$ROOT" /debootstrap/debootstrap --second-stage >> "$ROOT.debootstrap.log" 2>&1 \
        || die "debootstrap (second stage, emulated) failed: see $ROOT.debootstrap.log and $ROOT/debootstrap/debootstrap.log"
    echo "$stamp" > "$ROOT/.pi-check-ready"
    say "$arch: root built in $(since "$t0")"
}

qemu_for() { case $1 in arm64) echo qemu-aarch64-static ;; armhf) echo qemu-arm-static ;; esac; }
cpu_for() { case $1 in arm64) echo "${PI_CHECK_CPU_ARM64:-cortex-a72}" ;; armhf) echo "${PI_CHECK_CPU_ARMHF:-cortex-a7}" ;; esac; }
readme_apt_for() { case $1 in arm64) readme_apt ;; armhf) readme_apt_32 ;; esac; }

# ---- x86 reference ---------------------------------------------------------------------------------------------
# Each architecture is compared with x86 running the same interpreter: LiteRT for arm64 (the .venv), tflite-runtime
# with numpy 1 for armhf (a venv of the requirements pip chooses on armv7l). The two interpreters' int8 kernels
# round differently (scores up to about 0.06 apart on the keyword demo, and one extra "up" under tflite-runtime), so
# against LiteRT a faithful 32-bit install would fail; how far apart they are is printed, not judged.
OUT=$(mktemp -d /tmp/pi-check.XXXXXX)
X86_TFLITE=$CACHE/x86-tflite-runtime
x86_run() {  # x86_run TAG BIN: both demos with BIN/spotter into $OUT/TAG-<demo>.jsonl
    local tag=$1 bin=$2 d name args
    for d in "${DEMOS[@]}"; do
        name=${d%%|*}; args=${d#*|}
        (cd "$REPO" && "$bin/spotter" listen $args > "$OUT/$tag-$name.jsonl" 2> "$OUT/$tag-$name.err") \
            || die "$tag: spotter listen $args failed: $(tail -3 "$OUT/$tag-$name.err")"
        [ -s "$OUT/$tag-$name.jsonl" ] || die "$tag: spotter listen $args printed no detection"
    done
    say "$tag: $(wc -l < "$OUT/$tag-keywords.jsonl") keyword and $(wc -l < "$OUT/$tag-events.jsonl") event lines ($bin)"
}
armv7l_requirements() {  # the runtime requirements whose markers hold on armv7l, from pyproject.toml
    "$X86_BIN/python" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
from packaging.requirements import Requirement
environment = {"platform_machine": "armv7l", "python_version": "3.11", "sys_platform": "linux"}
for text in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    requirement = Requirement(text)
    if requirement.marker is None or requirement.marker.evaluate(environment):
        requirement.marker = None
        print(requirement)
PY
}
x86_reference() {
    [ -x "$X86_BIN/spotter" ] || die "no $X86_BIN/spotter: run 'make install-runtime' first (or set PI_CHECK_X86)"
    x86_run x86 "$X86_BIN"
    case " ${ARCHES[*]} " in *" armhf "*) ;; *) return ;; esac
    mkdir -p "$CACHE"
    [ -x "$X86_TFLITE/bin/pip" ] || python3 -m venv "$X86_TFLITE"
    local requirements
    mapfile -t requirements < <(armv7l_requirements)
    "$X86_TFLITE/bin/pip" install -q "${requirements[@]}" > "$OUT/x86-tflite.pip.log" 2>&1 \
        && "$X86_TFLITE/bin/pip" install -q --no-deps --force-reinstall "$REPO" >> "$OUT/x86-tflite.pip.log" 2>&1 \
        || die "x86 tflite-runtime reference: pip failed: $(tail -3 "$OUT/x86-tflite.pip.log")"
    x86_run x86-tflite "$X86_TFLITE/bin"
    local d name
    for d in "${DEMOS[@]}"; do
        name=${d%%|*}
        say "x86, tflite-runtime vs LiteRT on the $name demo (information: the interpreters differ):"
        python3 "$REPO/pi/compare.py" --score-tol "$TOL" "$OUT/x86-$name.jsonl" "$OUT/x86-tflite-$name.jsonl" >&2 || true
    done
}
reference_for() { case $1 in arm64) echo x86 ;; armhf) echo x86-tflite ;; esac; }

check_readme() {
    local arch=$1 cmd
    cmd=$(readme_install "$arch")
    grep -qF -- "$cmd" "$REPO/README.md" || die "README.md no longer says '$cmd' ($arch install): update pi/pi-check.sh to match it"
    grep -qF -- "$(readme_apt_for "$arch")" "$REPO/README.md" || die "README.md no longer says 'apt install $(readme_apt_for "$arch")' ($arch): update pi/pi-check.sh to match it"
}

# ---- one architecture ------------------------------------------------------------------------------------------
check_arch() {
    local arch=$1 t0; t0=$(date +%s)
    ROOT="$CACHE/$SUITE-$arch"
    [ "${PI_CHECK_README:-1}" = 0 ] || check_readme "$arch"    # PI_CHECK_README=0: try a sequence before the README has it
    stale_mounts
    build_root "$arch"
    mount_root
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # the host's site-local certificate authorities (a TLS-inspecting proxy's, say), so pip in the root reaches PyPI
    local ca_changed=0 c
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    for c in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$c" ] || continue
        cmp -s "$c" "$ROOT/usr/local/share/ca-certificates/${c##*/}" && continue
        cp "$c" "$ROOT/usr/local/share/ca-certificates/"; ca_changed=1
    done
    # a clean copy: what git tracks or would track, as it stands in the working tree
    local dest=/root/spotter
    rm -rf "$ROOT$dest" "$ROOT/root/out"; mkdir -p "$ROOT$dest" "$ROOT/root/out"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -C "$ROOT$dest" -xf -
    local demo_cmds="" d name args
    for d in "${DEMOS[@]}"; do
        name=${d%%|*}; args=${d#*|}
        demo_cmds+="echo '+ .venv/bin/spotter listen $args' >&2
.venv/bin/spotter listen $args > /root/out/$name.jsonl 2> /root/out/$name.err || { cat /root/out/$name.err >&2; exit 3; }
"
    done
    say "$arch: installing as the README says and running the demos (QEMU_CPU=$(cpu_for "$arch"), emulated: minutes)"
    local script="set -e
cd $dest
[ $ca_changed = 0 ] || update-ca-certificates >/dev/null 2>&1
echo \"+ uname -m: \$(uname -m); \$(python3 --version)\" >&2
echo '+ apt-get install -y $(readme_apt_for "$arch")' >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(readme_apt_for "$arch") >/dev/null
echo '+ $(readme_install "$arch")' >&2
$(readme_install "$arch") > /root/out/install.log 2>&1 || { tail -30 /root/out/install.log >&2; exit 2; }
grep '^Successfully installed' /root/out/install.log >&2 || true
test -x .venv/bin/spotter || { echo 'the install did not make .venv/bin/spotter' >&2; exit 2; }
.venv/bin/pip list 2>/dev/null | grep -iE '^(numpy|scipy|ai-edge-litert|tflite-runtime|cffi|sounddevice) ' | tr -s ' ' | tr '\n' ';' | sed 's/;\$/\\n/; s/;/; /g; s/^/+ installed: /' >&2
$demo_cmds"
    local log="$OUT/$arch.log"
    if ! "${NICE[@]}" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            QEMU_CPU="$(cpu_for "$arch")" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off \
            chroot "$ROOT" /bin/bash -c "$script" > "$log" 2>&1; then
        sed 's/^/  | /' "$log" | tail -40 >&2
        unmount_all
        die "$arch: the README's install or a demo failed under emulation (log above, whole log: $log)"
    fi
    sed -n 's/^+ /  + /p; /^spotter: /s/^/  /p; /^Successfully installed/s/^/  /p' "$log" >&2
    local failed=0
    for d in "${DEMOS[@]}"; do
        name=${d%%|*}
        cp "$ROOT/root/out/$name.jsonl" "$OUT/$arch-$name.jsonl"
        sed 's/^/  /' "$ROOT/root/out/$name.err" >&2
        say "$arch: $name demo vs $(reference_for "$arch"):"
        python3 "$REPO/pi/compare.py" --score-tol "$TOL" "$OUT/$(reference_for "$arch")-$name.jsonl" \
            "$OUT/$arch-$name.jsonl" >&2 || failed=1
    done
    [ "${PI_CHECK_KEEP:-0}" = 1 ] || rm -rf "$ROOT$dest" "$ROOT/root/out"
    unmount_all
    [ $failed = 0 ] || die "$arch ($SUITE): the demos' detections differ from $(reference_for "$arch")'s (above; outputs in $OUT)"
    say "$arch ($SUITE): PASSED in $(since "$t0")"
}

T0=$(date +%s)
if [ "${PI_CHECK_ROOTS_ONLY:-0}" = 1 ]; then    # only build (or check) the cached roots
    host_setup; mkdir -p "$CACHE"
    for arch in "${ARCHES[@]}"; do ROOT="$CACHE/$SUITE-$arch"; stale_mounts; build_root "$arch"; done
    exit 0
fi
host_setup
x86_reference
mkdir -p "$CACHE"
for arch in "${ARCHES[@]}"; do
    check_arch "$arch"
done
say "all passed (${ARCHES[*]}, Debian $SUITE) in $(since "$T0"); outputs in $OUT"
