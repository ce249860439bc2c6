#!/usr/bin/env bash
# The .deb as a user gets it: cpack builds it (and the .tar.gz) from the build folder, dpkg -x
# unpacks it into a fresh root, and the installed files are checked there, away from the build
# tree: the .desktop entry (desktop-file-validate), the metainfo (appstreamcli), lintian (errors
# fail, warnings are printed), Depends without CUDA and Recommends with it, `lmw --version` and
# `lmw generate` on the test model, lmw and lmworkbench needing no libcudart/libcublas, and the
# installed lmworkbench under Xvfb + openbox: its window found by title, a screenshot of it
# (installed-app.png in $LMW_SCREENSHOT_DIR, else <build>/screenshots), and a second launch with
# another folder, which exits and has the running window open it.
# Usage: package_test.sh <build dir> <models dir>; exit 77 (skip) when a tool is missing.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
MODELS=$2
for tool in cpack dpkg-deb dpkg-shlibdeps desktop-file-validate appstreamcli lintian Xvfb openbox xdotool scrot; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (scripts/install-deps.sh)"; exit 77; }
done
WORK=$(mktemp -d /tmp/lmw-package.XXXXXX)
SHOTS=${LMW_SCREENSHOT_DIR:-$BUILD/screenshots}
N=0
. "$(dirname "$0")/../e2e/x11_lib.sh"
fail() { echo "FAIL: $*"; [ -f "$WORK/app.err" ] && tail -20 "$WORK/app.err"; exit 1; }
ok() { N=$((N + 1)); echo "ok $N - $*"; }

# --- the package
(cd "$BUILD" && cpack -G "DEB;TGZ" -B "$WORK/pkg") >"$WORK/cpack.log" 2>&1 || { tail -30 "$WORK/cpack.log"; fail "cpack"; }
DEB=$(ls "$WORK"/pkg/lmworkbench_*.deb)
TGZ=$(ls "$WORK"/pkg/lmworkbench_*.tar.gz)
ok "cpack wrote $(basename "$DEB") and $(basename "$TGZ")"
tar -tzf "$TGZ" >"$WORK/tgz.txt"  # (no grep -q on a pipe: pipefail would see the writer's SIGPIPE)
grep -q '/usr/bin/lmworkbench$' "$WORK/tgz.txt" && grep -q '/usr/lib/lmworkbench/liblmw_cuda.so$' "$WORK/tgz.txt" || fail "the .tar.gz has no bin/lmworkbench"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
RECOMMENDS=$(dpkg-deb -f "$DEB" Recommends)
echo "  Depends: $DEPENDS"
echo "  Recommends: $RECOMMENDS"
for lib in libqt6widgets6 libsentencepiece libpcre2-8 libutf8proc; do
  grep -q "$lib" <<<"$DEPENDS" || fail "Depends lacks $lib"
done
grep -Eqi 'cuda|cublas' <<<"$DEPENDS" && fail "a CUDA library reached Depends: $DEPENDS"
grep -q 'cudart' <<<"$RECOMMENDS" && grep -q 'cublas' <<<"$RECOMMENDS" || fail "Recommends lacks cudart/cublas"
ok "Depends from the binaries, CUDA runtime and cuBLAS only recommended"

ROOT=$WORK/root
dpkg -x "$DEB" "$ROOT"
for f in usr/bin/lmw usr/bin/lmworkbench usr/lib/lmworkbench/liblmw_cuda.so usr/share/applications/lmworkbench.desktop \
         usr/share/icons/hicolor/scalable/apps/lmworkbench.svg usr/share/man/man1/lmw.1.gz usr/share/man/man1/lmworkbench.1.gz \
         usr/share/doc/lmworkbench/copyright; do
  [ -e "$ROOT/$f" ] || fail "the package has no /$f"
done
for s in 16 22 24 32 48 64 128 256 512; do
  [ -f "$ROOT/usr/share/icons/hicolor/${s}x${s}/apps/lmworkbench.png" ] || fail "no ${s}x${s} icon"
done
zgrep -q 'generate' "$ROOT/usr/share/man/man1/lmw.1.gz" || fail "lmw.1 does not list the generate command"
zgrep -q 'screenshot' "$ROOT/usr/share/man/man1/lmworkbench.1.gz" || fail "lmworkbench.1 does not list --screenshot"
ok "dpkg -x: programs, CUDA module, desktop entry, icons 16-512 + scalable, man pages, copyright"

desktop-file-validate "$ROOT/usr/share/applications/lmworkbench.desktop" || fail "desktop-file-validate"
grep -q '^Exec=lmworkbench %F$' "$ROOT/usr/share/applications/lmworkbench.desktop" || fail "Exec is not 'lmworkbench %F'"
ok "desktop-file-validate"
appstreamcli validate --no-net "$ROOT"/usr/share/metainfo/*.metainfo.xml || fail "appstreamcli validate"
ok "appstreamcli validate --no-net"
lintian --tag-display-limit 0 "$DEB" >"$WORK/lintian.txt" 2>&1 || true
sed 's/^/  /' "$WORK/lintian.txt"
grep -q '^E: ' "$WORK/lintian.txt" && fail "lintian reports errors"
ok "lintian: no errors ($(grep -c '^W: ' "$WORK/lintian.txt" || true) warnings)"

# --- the installed programs, nothing of the build tree on their way
for prog in lmw lmworkbench; do
  ldd "$ROOT/usr/bin/$prog" >"$WORK/ldd.txt"
  grep -Eq 'libcudart|libcublas' "$WORK/ldd.txt" && fail "$prog links the CUDA libraries itself"
  grep -q 'not found' "$WORK/ldd.txt" && fail "$prog: $(grep 'not found' "$WORK/ldd.txt")"
done
ok "lmw and lmworkbench need no libcudart/libcublas"
cd "$WORK"
"$ROOT/usr/bin/lmw" --version >"$WORK/version.txt" || fail "lmw --version"
sed 's/^/  /' "$WORK/version.txt"
head -1 "$WORK/version.txt" | grep -Eq '^lmw [0-9]+\.[0-9]+\.[0-9]+$' || fail "lmw --version's first line"
if ldconfig -p >"$WORK/ldconfig.txt" && grep -q 'libcudart.so.13 ' "$WORK/ldconfig.txt"; then  # the module loads from the unpacked root
  grep -q '^CUDA runtime: 13\.' "$WORK/version.txt" || fail "the installed CUDA module did not load"
else
  grep -q '^CUDA backend: not available' "$WORK/version.txt" || fail "no reason given for the missing CUDA backend"
fi
env -u DISPLAY "$ROOT/usr/bin/lmworkbench" --version >"$WORK/app-version.txt" || fail "lmworkbench --version without a display"
grep -q '^Qt: 6\.' "$WORK/app-version.txt" || fail "lmworkbench --version has no Qt version"
ok "lmw --version and lmworkbench --version"
OUT=$("$ROOT/usr/bin/lmw" generate "$MODELS/stories260K" --backend cpu -p "Once upon a time" --max-new-tokens 24 \
      --temperature 0 -q) || fail "lmw generate"
echo "  generated: $OUT"
[ "$(wc -w <<<"$OUT")" -ge 8 ] || fail "lmw generate wrote too little: '$OUT'"
ok "lmw generate on stories260K"

# --- the installed app on a display of its own
start_display
PROFILE=$WORK/profile
mkdir -p "$PROFILE/LMWorkbench" "$WORK/xdg" && chmod 700 "$WORK/xdg"
printf '[engine]\nsessionLen=256\nbackend=cpu\n' >"$PROFILE/LMWorkbench/lmworkbench.ini"
export XDG_RUNTIME_DIR=$WORK/xdg QT_QPA_PLATFORM=xcb
"$ROOT/usr/bin/lmworkbench" --profile "$PROFILE" "$MODELS/stories260K" >"$WORK/app.out" 2>"$WORK/app.err" &
APP_PID=$!
wait_for 90 "the window titled 'stories260K — LM Workbench'" xdotool search --onlyvisible --name '^stories260K — LM Workbench$'
W=$(xdotool search --onlyvisible --name '^stories260K — LM Workbench$' | head -1)
xdotool windowactivate --sync "$W" >/dev/null 2>&1 || true
sleep 1
mkdir -p "$SHOTS"
scrot -o -u "$SHOTS/installed-app.png" || fail "scrot"
[ -s "$SHOTS/installed-app.png" ] || fail "empty screenshot"
ok "the installed lmworkbench shows 'stories260K — LM Workbench' ($SHOTS/installed-app.png)"

# A second launch with another folder hands it over and exits; the running window loads it.
timeout 20 "$ROOT/usr/bin/lmworkbench" --profile "$PROFILE" "$MODELS/qwen3-tiny" >"$WORK/second.out" 2>&1 \
  || fail "the second launch exited with $?: $(cat "$WORK/second.out")"
wait_for 90 "the running window to open qwen3-tiny" xdotool search --onlyvisible --name '^qwen3-tiny — LM Workbench$'
[ "$(xdotool search --onlyvisible --name 'LM Workbench$' | wc -l)" = 1 ] || fail "a second window opened"
kill -0 "$APP_PID" || fail "the first instance is gone"
ok "a second launch opens its folder in the running window and exits 0"
echo "all $N checks passed"
