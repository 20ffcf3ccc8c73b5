#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# alphatop installed as a user installs it: `cmake --install BUILD --prefix TMP`, then the
# tree moved elsewhere (an install must not depend on where it was made), then everything a
# user does with it: C programs built with pkg-config and with find_package(alphatop) (shared
# and static), `import alphatop` from the installed package and from `pip install ./python`
# (the agent for Agent, the core library for alphatop.analyze),
# the installed alphatop's --version and demo (and a lone copy's demo saying what is missing),
# the man pages, and the completion scripts.
# The install directories come from CMake (tests/install/CMakeLists.txt): AT_BINDIR, AT_LIBDIR,
# AT_INCLUDEDIR, AT_MANDIR, AT_DATADIR, AT_LIBEXECDIR, AT_PYTHON_DIR, AT_BASH_COMPLETION_DIR,
# AT_ZSH_COMPLETION_DIR (relative to the prefix), and AT_BUILD_DIR, AT_SOURCE_DIR, AT_VERSION,
# CC, AT_SANITIZE (1: the build is instrumented, so are the programs built here).
set -euo pipefail
tmp=$(mktemp -d /tmp/alphatop-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
checks=0
ok() {
    checks=$((checks + 1))
    echo "ok: $*"
}
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

cflags=()
pyenv=(env -u ALPHATOP_LIB -u ALPHATOP_CORE_LIB -u PYTHONPATH -u LD_LIBRARY_PATH
       PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=1)
if [[ ${AT_SANITIZE:-0} == 1 ]]; then
    cflags=(-fsanitize=address,undefined)
    # python is not instrumented: the sanitizer runtimes must be loaded before anything else.
    pyenv+=("LD_PRELOAD=$($CC -print-file-name=libasan.so):$($CC -print-file-name=libubsan.so)"
            ASAN_OPTIONS=detect_leaks=0)
fi

cmake --install "$AT_BUILD_DIR" --prefix "$tmp/staged" >"$tmp/install.log"
mv "$tmp/staged" "$tmp/prefix"
p=$tmp/prefix
lib=$p/$AT_LIBDIR
for f in "$AT_BINDIR/alphatop" "$AT_BINDIR/alphatop-keygen" \
    "$AT_LIBDIR/libalphatop_agent.so" "$AT_LIBDIR/libalphatop_agent.a" \
    "$AT_LIBDIR/libalphatop_core.so.$AT_VERSION" \
    "$AT_INCLUDEDIR/alphatop/agent.h" "$AT_INCLUDEDIR/alphatop/protocol.h" \
    "$AT_INCLUDEDIR/alphatop/status.h" "$AT_LIBDIR/pkgconfig/alphatop.pc" \
    "$AT_LIBDIR/cmake/alphatop/alphatopConfig.cmake" \
    "$AT_LIBDIR/cmake/alphatop/alphatopConfigVersion.cmake" \
    "$AT_MANDIR/man1/alphatop.1" "$AT_MANDIR/man1/alphatop-keygen.1" \
    "$AT_BASH_COMPLETION_DIR/alphatop" "$AT_ZSH_COMPLETION_DIR/_alphatop" \
    "$AT_LIBEXECDIR/alphatop/c_trainer" "$AT_DATADIR/alphatop/examples/torch_grokking.py" \
    "$AT_PYTHON_DIR/alphatop/__init__.py" "$AT_PYTHON_DIR/alphatop/_lib.py"; do
    [[ -e $p/$f ]] || fail "cmake --install did not install $f"
done
ok "cmake --install put every file in place (installed into one prefix, then moved)"

# Each shared library's SONAME is the name the Python package asks the loader for.
read -r py_soname py_core_soname < <("${pyenv[@]}" PYTHONPATH="$p/$AT_PYTHON_DIR" \
    /usr/bin/python3 -c 'import alphatop._lib as l, alphatop._core as c
print(l.soname(l.LIBNAME), l.soname(c.LIBNAME))')
soname_of() { objdump -p "$1" | awk '$1 == "SONAME" { print $2 }'; }
soname=$(soname_of "$lib/libalphatop_agent.so")
core_soname=$(soname_of "$lib/libalphatop_core.so.$AT_VERSION")
for pair in "$soname $py_soname" "$core_soname $py_core_soname"; do
    read -r so py_so <<<"$pair"
    [[ -n $so && -e $lib/$so ]] || fail "SONAME '$so' is not installed"
    [[ $so == "$py_so" ]] || fail "SONAME $so, but alphatop/_lib.py loads $py_so"
done
[[ ! -e $lib/libalphatop_core.so ]] || fail "libalphatop_core.so installed: nothing links to it"
ok "SONAMEs $soname and $core_soname, as alphatop/_lib.py expects"

# pkg-config: the shared library, then the static one alone (-l:libalphatop_agent.a), whose
# protocol and common objects must be inside for the link to succeed.
export PKG_CONFIG_PATH=$lib/pkgconfig
[[ $(pkg-config --modversion alphatop) == "$AT_VERSION" ]] || fail "pkg-config --modversion"
read -ra pc_flags <<<"$(pkg-config --cflags --libs alphatop)"
"$CC" "${cflags[@]}" -o "$tmp/app_pc" "$AT_SOURCE_DIR/tests/install/app.c" "${pc_flags[@]}"
LD_LIBRARY_PATH=$lib "$tmp/app_pc" "ipc://$tmp/pc.ipc" | grep -q '^agent ok' ||
    fail "the program built with pkg-config did not run"
readelf -d "$tmp/app_pc" | grep -q "NEEDED.*\[$soname\]" || fail "app_pc does not need $soname"
# alphatop's own Libs and Libs.private (depth 2: not its requirements' static closure, which
# Debian's libzmq cannot give: its norm.pc names a libprotokit.a no package ships), then its
# Requires.private, shared.
pc_static="$(pkg-config --cflags --static --libs --maximum-traverse-depth=2 alphatop)"
read -ra pc_static <<<"$pc_static $(pkg-config --libs libzmq libcjson)"
pc_static=("${pc_static[@]/#-lalphatop_agent/-l:libalphatop_agent.a}")
"$CC" "${cflags[@]}" -o "$tmp/app_pc_static" "$AT_SOURCE_DIR/tests/install/app.c" \
    "${pc_static[@]}"
"$tmp/app_pc_static" "ipc://$tmp/pcs.ipc" | grep -q '^agent ok' ||
    fail "the program linked with libalphatop_agent.a did not run"
! readelf -d "$tmp/app_pc_static" | grep -q libalphatop_agent || fail "app_pc_static is not static"
ok "cc \$(pkg-config --cflags --libs alphatop): builds and runs, shared and static"

# find_package(alphatop): alphatop::agent and alphatop::agent_static.
cmake -S "$AT_SOURCE_DIR/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$p" \
    -DAT_VERSION="$AT_VERSION" -DCMAKE_C_FLAGS="${cflags[*]}" >"$tmp/consumer.log" 2>&1 ||
    fail "find_package(alphatop) failed: $(cat "$tmp/consumer.log")"
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 ||
    fail "building against alphatop::agent failed: $(cat "$tmp/consumer.log")"
"$tmp/consumer/app_shared" "ipc://$tmp/cm.ipc" | grep -q '^agent ok' || fail "app_shared"
"$tmp/consumer/app_static" "ipc://$tmp/cms.ipc" | grep -q '^agent ok' || fail "app_static"
ok "find_package(alphatop): alphatop::agent and alphatop::agent_static build and run"

# A seeded heavy-tailed checkpoint and the installed scan's rows of it: alphatop.analyze, in
# the Python process through the core library, must give the same numbers.
"${pyenv[@]}" PYTHONPATH="$p/$AT_PYTHON_DIR" /usr/bin/python3 -c '
import sys, numpy as np
from alphatop import safetensors
rng = np.random.default_rng(7)
safetensors.save(sys.argv[1], {"fc1.weight": rng.standard_t(3, (96, 64)).astype(np.float32),
                               "fc2.weight": rng.standard_t(4, (32, 96)).astype(np.float32)})
' "$tmp/model.safetensors" || fail "writing a checkpoint with the installed package"
"$p/$AT_BINDIR/alphatop" scan --json "$tmp/model.safetensors" >"$tmp/scan.json" ||
    fail "installed alphatop scan --json"

# The installed package finds the installed libraries with no variable set: Agent runs, and
# analyze() of the checkpoint equals scan's rows.
check_python() { # PYTHONPATH, where the agent and the core library must come from, then env
    # (the interpreter: $PY, else /usr/bin/python3)
    local out version file agent core
    out=$("${pyenv[@]}" PYTHONPATH="$1" "${@:4}" "${PY:-/usr/bin/python3}" -c '
import json, sys
import alphatop, alphatop._core as c, alphatop._lib as l
a = alphatop.Agent(endpoint="ipc://'"$tmp"'/py.ipc", linger_ms=0)
a.close()
with open(sys.argv[2]) as f:
    rows = [r for r in map(json.loads, f) if r["type"] == "layer"]
details = alphatop.analyze(sys.argv[1])
if list(details.name) != ["fc1.weight", "fc2.weight"] or len(rows) != 2:
    sys.exit(f"analyze gave layers {list(details.name)}, scan {len(rows)} rows")
for (_, got), ref in zip(details.iterrows(), rows):
    for k in ("name", "N", "M", "num_evals", "alpha", "xmin", "D", "log_norm", "stable_rank"):
        if got[k] != ref[k]:
            sys.exit("%s: %s is %r in analyze(), %r in scan" % (ref["name"], k, got[k], ref[k]))
print(alphatop.__version__, alphatop.__file__, l.load()._name, c.library()._name)
' "$tmp/model.safetensors" "$tmp/scan.json") || fail "the package in $1 failed (above)"
    read -r version file agent core <<<"$out"
    [[ $version == "$AT_VERSION" ]] || fail "alphatop.__version__ $version, not $AT_VERSION"
    [[ $file == "$1"/* ]] || fail "imported $file, not the package in $1"
    [[ $agent == "$2" ]] || fail "loaded $agent, not $2"
    [[ $core == "$3" ]] || fail "loaded $core, not $3"
}
check_python "$p/$AT_PYTHON_DIR" "$lib/$soname" "$lib/$core_soname"
ok "import alphatop from the installed package loads $AT_LIBDIR/$soname and" \
    "$AT_LIBDIR/$core_soname; analyze() equals scan"

# pip, offline, with Debian's setuptools: the very commands README.md and docs/python.md give,
# run from a copy of the checkout (pip writes its build files beside the package). An index
# nobody answers on proves nothing is fetched: numpy and pandas come from Debian.
mkdir "$tmp/checkout"
cp -r "$AT_SOURCE_DIR/python" "$tmp/checkout/python"
pipenv=(env PIP_INDEX_URL=http://127.0.0.1:9/ PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
        PIP_ROOT_USER_ACTION=ignore)
for doc in "$AT_SOURCE_DIR/README.md" "$AT_SOURCE_DIR/docs/python.md"; do
    grep -qxF '/usr/bin/python3 -m venv --system-site-packages ~/venv     # numpy, pandas, torch from Debian' "$doc" &&
        grep -qxF '~/venv/bin/pip install --no-build-isolation ./python' "$doc" &&
        grep -qxF '/usr/bin/python3 -m pip install --no-build-isolation --target DIR ./python' "$doc" ||
        fail "$doc no longer gives the pip commands this test runs"
done
(cd "$tmp/checkout" && "${pipenv[@]}" /usr/bin/python3 -m pip install --no-build-isolation \
    --target "$tmp/pip" ./python) >"$tmp/pip.log" 2>&1 ||
    fail "pip install --target DIR ./python: $(cat "$tmp/pip.log")"
check_python "$tmp/pip" "$soname" "$core_soname" LD_LIBRARY_PATH="$lib"
ok "pip install --no-build-isolation --target DIR ./python works offline; the package loads" \
    "$soname and $core_soname from LD_LIBRARY_PATH; analyze() equals scan"
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv" >"$tmp/venv.log" 2>&1 ||
    fail "python3 -m venv: $(cat "$tmp/venv.log")"
(cd "$tmp/checkout" && "${pipenv[@]}" "$tmp/venv/bin/pip" install --no-build-isolation ./python) \
    >"$tmp/venv-pip.log" 2>&1 || fail "venv pip install ./python: $(cat "$tmp/venv-pip.log")"
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PY=$tmp/venv/bin/python check_python "$site" "$soname" "$core_soname" LD_LIBRARY_PATH="$lib"
ok "pip install --no-build-isolation ./python into a venv with Debian's numpy works offline;" \
    "analyze() equals scan"

[[ $("$p/$AT_BINDIR/alphatop" --version) == "alphatop $AT_VERSION" ]] || fail "alphatop --version"
ok "installed alphatop --version"

# The demo of the installed program runs the installed C trainer; a lone copy says what it
# misses.
"$p/$AT_BINDIR/alphatop" demo --headless --trainer c --every 50 --max-snapshots 2 \
    >"$tmp/demo.out" 2>"$tmp/demo.err" || fail "installed demo: $(cat "$tmp/demo.err")"
grep -q '"type":"layer"' "$tmp/demo.out" || fail "installed demo analysed no layer"
ok "installed alphatop demo --trainer c"
if [[ ${AT_SANITIZE:-0} != 1 ]] && /usr/bin/python3 -c 'import torch, sklearn' 2>/dev/null; then
    "$p/$AT_BINDIR/alphatop" demo --headless --trainer torch --every 50 --max-snapshots 2 \
        >"$tmp/demo.out" 2>"$tmp/demo.err" || fail "installed demo (torch): $(cat "$tmp/demo.err")"
    grep -q '"framework":"pytorch' "$tmp/demo.out" || fail "the torch demo did not say hello"
    ok "installed alphatop demo --trainer torch"
fi
mkdir "$tmp/lone"
cp "$p/$AT_BINDIR/alphatop" "$tmp/lone/"
rc=0
"$tmp/lone/alphatop" demo --headless --max-snapshots 1 >/dev/null 2>"$tmp/lone.err" || rc=$?
[[ $rc == 2 ]] || fail "a lone copy's demo exited $rc, not 2"
grep -q "cannot find the C trainer: no $tmp/lone/.*c_trainer (installed)" "$tmp/lone.err" ||
    fail "a lone copy's demo did not say what is missing: $(cat "$tmp/lone.err")"
ok "a lone copy's demo says which files are missing (exit 2)"
mv "$p/$AT_PYTHON_DIR/alphatop" "$tmp/package-aside"
rc=0
"$p/$AT_BINDIR/alphatop" demo --headless --trainer torch >/dev/null 2>"$tmp/nopkg.err" || rc=$?
mv "$tmp/package-aside" "$p/$AT_PYTHON_DIR/alphatop"
[[ $rc == 2 ]] && grep -q "but not the Python package it needs" "$tmp/nopkg.err" ||
    fail "the demo without the Python package exited $rc: $(cat "$tmp/nopkg.err")"
ok "the demo without the installed Python package says so (exit 2)"

# Man pages: man renders them, groff finds nothing to warn about.
for page in alphatop alphatop-keygen; do
    f=$p/$AT_MANDIR/man1/$page.1
    warnings=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
    [[ -z $warnings ]] || fail "groff warns about $page.1: $warnings"
    man -l "$f" 2>&1 | grep -q "^NAME" || fail "man -l $page.1 shows no NAME"
done
ok "man -l shows both installed pages; groff -ww has no warning"

# Completions load and register.
bash -c "source '$p/$AT_BASH_COMPLETION_DIR/alphatop' && complete -p alphatop" |
    grep -q -- '-F _alphatop alphatop' || fail "the bash completion did not register"
ok "the bash completion loads"
if command -v zsh >/dev/null; then
    zsh -f -c "fpath=('$p/$AT_ZSH_COMPLETION_DIR' \$fpath); autoload -Uz compinit
               compinit -u -D; [[ \$_comps[alphatop] == _alphatop ]]" ||
        fail "the zsh completion did not register"
    ok "the zsh completion loads"
fi
echo "$checks passed, 0 failed"
