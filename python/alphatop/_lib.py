# SPDX-License-Identifier: Apache-2.0
"""Finds and loads the package's C libraries, libalphatop_agent.so (alphatop.agent) and
libalphatop_core.so (alphatop._core), and declares the agent's C API
(agent/include/alphatop/agent.h).

Both libraries are looked up the same way, in order: the library's environment variable
($ALPHATOP_LIB for the agent, $ALPHATOP_CORE_LIB for the core: the .so file, or a directory
holding it); next to this package; the library directory of the prefix this package is
installed in (PREFIX/lib/python3.X/dist-packages/alphatop -> PREFIX/lib/MULTIARCH, lib64, lib,
where `cmake --install` puts both), by SONAME; the build trees of a source checkout
(build*/agent/ or build*/core/ beside python/); then the dynamic loader's own search for the
SONAME (LD_LIBRARY_PATH, the ldconfig cache, /usr/lib), which finds a library installed in the
system for a package installed with `pip install ./python`.
"""

import ctypes
import glob
import os
import sysconfig
import threading

LIBNAME = "libalphatop_agent.so"
# An installed library is known to the loader by its SONAME, libname.SOVERSION: SOVERSION is
# the project's major version (agent/ and core/CMakeLists.txt; tests/install checks they agree).
SOVERSION = 0

# at_status values used here (common/include/alphatop/status.h).
AT_OK = 0
AT_ERR_SIZE = -5
AT_ERR_AGAIN = -12

# at_proto_kind and at_proto_dtype (protocol/include/alphatop/protocol.h).
KINDS = {"linear": 0, "conv2d": 1, "embedding": 2, "conv1d": 3, "lora_A": 4, "lora_B": 5}
DTYPES = {"f32": 0, "f16": 1, "bf16": 2}
NDIM = {"linear": 2, "conv2d": 4, "embedding": 2, "conv1d": 3, "lora_A": 2, "lora_B": 2}

AT_AGENT_BASE = 1
AT_AGENT_ELSEWHERE = 2
MAX_SCALARS = 64  # AT_PROTO_MAX_SCALARS


class LibraryNotFound(ImportError):
    """libalphatop_agent.so or libalphatop_core.so could not be found or loaded."""


class Opts(ctypes.Structure):
    """Mirror of at_agent_opts: every field is 8 bytes wide, so no padding rules apply."""

    _fields_ = [
        ("model", ctypes.c_char_p),
        ("framework", ctypes.c_char_p),
        ("host", ctypes.c_char_p),
        ("rank", ctypes.c_int64),
        ("world_size", ctypes.c_int64),
        ("interval", ctypes.c_int64),
        ("budget_bytes", ctypes.c_int64),
        ("linger_ms", ctypes.c_int64),
        ("checksum", ctypes.c_int64),
        ("verbose", ctypes.c_int64),
        ("curve_server_key", ctypes.c_char_p),
        ("curve_client_keyfile", ctypes.c_char_p),
        ("tag_keys", ctypes.POINTER(ctypes.c_char_p)),
        ("tag_values", ctypes.POINTER(ctypes.c_char_p)),
        ("ntags", ctypes.c_int64),
    ]


class Stats(ctypes.Structure):
    """Mirror of at_agent_stats."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in (
            "snapshots_sent",
            "snapshots_dropped",
            "snapshots_skipped",
            "messages_dropped",
            "bytes_queued",
            "bytes_in_flight",
            "peak_in_flight",
            "budget_bytes",
            "controls_received",
            "layers_sent",
            "layers_deferred",
            "layers_skipped",
            "sweep_layers",
            "sweep_done",
        )
    ]


def soname(libname):
    """The SONAME of the library libname ("libalphatop_agent.so" -> "libalphatop_agent.so.0")."""
    return f"{libname}.{SOVERSION}"


def _in_dir(d, libname):
    """The library in directory d: its SONAME file (an install), else the plain name (a build)."""
    path = os.path.join(d, soname(libname))
    return path if os.path.exists(path) else os.path.join(d, libname)


def _prefix_libdirs(here):
    """Library directories of the prefix the package at here is installed in, if it is in one
    (PREFIX/lib*/python3.X/{dist,site}-packages/alphatop): PREFIX/lib/MULTIARCH, lib64, lib."""
    pydir = os.path.dirname(os.path.dirname(here))
    if not os.path.basename(pydir).startswith("python"):
        return []
    prefix = os.path.dirname(os.path.dirname(pydir))
    arch = sysconfig.get_config_var("MULTIARCH")
    return ([os.path.join(prefix, "lib", arch)] if arch else []) + [
        os.path.join(prefix, d) for d in ("lib64", "lib")
    ]


def candidates(libname, env, subdir):
    """Where the library libname is looked up, in order (see the module's doc): env names its
    environment variable, subdir its directory in a build tree."""
    value = os.environ.get(env)
    if value:
        yield _in_dir(value, libname) if os.path.isdir(value) else value
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield _in_dir(here, libname)
    for d in _prefix_libdirs(here):
        path = os.path.join(d, soname(libname))
        if os.path.exists(path):
            yield path
    # A source checkout: python/alphatop/ -> the repository root, then its build directories.
    root = os.path.dirname(os.path.dirname(here))
    yield from sorted(glob.glob(os.path.join(root, "build*", subdir, libname)))
    yield soname(libname)


def load_library(libname, env, subdir, declare, mirrors, header):
    """The first library of candidates() that loads, has every function declare() declares,
    and whose structs are as big as their ctypes mirrors: mirrors maps a size function
    ("at_agent_opts_size") to its mirror. Raises LibraryNotFound, saying where it looked and
    how to build the library."""
    tried = []
    for path in candidates(libname, env, subdir):
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            lib = declare(ctypes.CDLL(path))
        except (OSError, AttributeError) as e:
            tried.append(f"{path} ({e})")
            continue
        # The library writes into our copies of these structs: they must agree.
        wrong = [
            f"{fn[: -len('_size')]} is {getattr(lib, fn)()} bytes there, "
            f"{ctypes.sizeof(mirror)} here"
            for fn, mirror in mirrors.items()
            if getattr(lib, fn)() != ctypes.sizeof(mirror)
        ]
        if wrong:
            tried.append(f"{path} (built from another {header}: {'; '.join(wrong)})")
            continue
        return lib
    raise LibraryNotFound(
        f"alphatop: cannot load the library {libname}. Tried:\n  "
        + "\n  ".join(tried)
        + "\nBuild it with `cmake -S . -B build && cmake --build build -j2` in the alphatop"
        f" repository (it lands in build/{subdir}/), then set {env}=/path/to/build/{subdir},"
        " or install it with `cmake --install build` (with a prefix the loader does not search,"
        " set LD_LIBRARY_PATH=PREFIX/lib; see docs/python.md)."
    )


class Owner:
    """Base of the objects that own a C handle (self._handle): close() frees it once, through
    the subclass's _free(handle); also on leaving a with block and when garbage collected."""

    _handle = None

    def close(self):
        handle, self._handle = self._handle, None
        if handle:
            self._free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Interpreter shutdown may already have torn down ctypes: never raise from here.
        try:
            self.close()
        except Exception:
            pass


def cached(load):
    """A function returning load()'s result, calling it once (thread-safe)."""
    lock = threading.Lock()
    box = []

    def get():
        with lock:
            if not box:
                box.append(load())
            return box[0]

    return get


def _declare(lib):
    c = ctypes
    i64, p = c.c_int64, c.c_void_p
    sigs = {
        "at_agent_opts_size": (c.c_size_t, []),
        "at_agent_opts_default": (None, [c.POINTER(Opts)]),
        "at_agent_new": (p, [c.c_char_p, c.c_char_p, c.POINTER(Opts)]),
        "at_agent_free": (None, [p]),
        "at_agent_set_tag": (c.c_int, [p, c.c_char_p, c.c_char_p]),
        "at_agent_snapshot_due": (c.c_int, [p, i64]),
        "at_agent_interval": (i64, [p]),
        "at_agent_paused": (c.c_int, [p]),
        "at_agent_snapshot_begin": (c.c_int, [p, i64]),
        "at_agent_publish_slice": (
            c.c_int,
            [p, c.c_char_p, c.c_int, c.c_int, c.c_int, c.POINTER(i64), p, c.c_uint,
             c.POINTER(i64), c.POINTER(i64)],
        ),
        "at_agent_layer_wanted": (c.c_int, [p, c.c_uint64]),
        "at_agent_snapshot_end": (c.c_int, [p]),
        "at_agent_last_drop": (c.c_char_p, [p]),
        "at_agent_log": (c.c_int, [p, i64, c.c_int, c.POINTER(c.c_char_p), c.POINTER(c.c_double)]),
        "at_agent_should_stop": (c.c_int, [p, c.c_char_p, c.c_size_t]),
        "at_agent_stats_get": (c.c_int, [p, c.POINTER(Stats)]),
        "at_agent_last_error": (c.c_char_p, [p]),
        "at_agent_keygen": (c.c_int, [c.c_char_p]),
        "at_strerror": (c.c_char_p, [c.c_int]),
        "at_proto_default_endpoint": (c.c_int, [c.c_char_p, c.c_size_t]),
    }
    return declare(lib, sigs)


def declare(lib, sigs):
    """Sets restype and argtypes of lib's functions from sigs, {name: (restype, argtypes)};
    AttributeError when one is missing. Returns lib."""
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def load():
    """Returns the agent library (ctypes.CDLL) with its functions declared. Raises
    LibraryNotFound."""
    # Opts is read now, not at import: a test swaps in a wrong mirror to see it refused.
    return load_library(LIBNAME, "ALPHATOP_LIB", "agent", _declare,
                        {"at_agent_opts_size": Opts}, "agent.h")
