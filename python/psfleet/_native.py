"""ctypes binding of libpsfleet_client (client/psfleet_client.h).

The structs here mirror the C header field by field; load_library() checks their
sizes against the library's own psf_client_sizeof() so that a package and a
library from different psfleet versions fail at load with a clear error instead
of corrupting memory.
"""
import ctypes
import ctypes.util
import os
import threading

from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_int, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)

ENV_VAR = "PSFLEET_CLIENT_LIB"
SONAME = "libpsfleet_client.so.0"


class Opts(Structure):
    _fields_ = [("timeout_ms", c_uint32), ("token", c_char_p), ("ca_file", c_char_p),
                ("server_name", c_char_p), ("cert_file", c_char_p), ("key_file", c_char_p),
                ("connect_now", c_int)]


class Prediction(Structure):
    _fields_ = [("status", c_int), ("message", c_char * 256), ("symbol", c_char * 64),
                ("prediction", c_double), ("predicted_close", c_double),
                ("target", c_char * 16), ("model_version", c_uint64), ("as_of", c_char * 11),
                ("last_close", c_double)]


class ModelInfo(Structure):
    _fields_ = [("model_version", c_uint64), ("trained_steps", c_uint64),
                ("model", c_char * 16), ("target", c_char * 16), ("features", c_char * 512),
                ("tensors", c_char * 1024), ("shard_versions", c_char * 256),
                ("test_rmse", c_double), ("test_mae", c_double), ("naive_rmse", c_double),
                ("symbols", c_uint32), ("shard", c_uint32), ("shards", c_uint32),
                ("node", c_char * 64)]


class Bar(Structure):
    _fields_ = [("date", c_char * 11), ("close", c_double), ("open", c_double),
                ("high", c_double), ("low", c_double), ("volume", c_double)]


class KV(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class Worker(Structure):
    _fields_ = [("worker", c_char_p), ("clock", c_int64), ("live", c_int),
                ("last_seq", c_uint64), ("pushes", c_uint64)]


class NodeStatus(Structure):
    _fields_ = [("node", c_char_p), ("role", c_char_p), ("ready", c_int),
                ("model_version", c_uint64), ("uptime_seconds", c_double),
                ("n_extra", c_size_t), ("extra", POINTER(KV)),
                ("n_workers", c_size_t), ("workers", POINTER(Worker))]


class IngestResult(Structure):
    _fields_ = [("status", c_int), ("message", c_char * 320)]


class IngestSummary(Structure):
    _fields_ = [("accepted", c_uint64), ("model_version", c_uint64),
                ("finetune_rows", c_uint64), ("finetune_steps", c_uint32)]


_STRUCTS = {"psf_client_opts": Opts, "psf_prediction": Prediction, "psf_model_info": ModelInfo,
            "psf_client_bar": Bar, "psf_node_status": NodeStatus, "psf_client_kv": KV,
            "psf_client_worker": Worker, "psf_client_ingest_result": IngestResult,
            "psf_client_ingest_summary": IngestSummary}

_lock = threading.Lock()
_lib = None
_lib_path = None


def _declare(lib):
    lib.psf_client_open.argtypes = [c_char_p, POINTER(Opts), POINTER(c_void_p)]
    lib.psf_client_open.restype = c_int
    lib.psf_client_close.argtypes = [c_void_p]
    lib.psf_client_close.restype = None
    lib.psf_client_predict_recent.argtypes = [c_void_p, c_char_p, c_char_p, POINTER(Bar),
                                              c_size_t, POINTER(Prediction)]
    lib.psf_client_predict_recent.restype = c_int
    lib.psf_client_predict_batch.argtypes = [c_void_p, POINTER(c_char_p), c_size_t, c_char_p,
                                             POINTER(Prediction)]
    lib.psf_client_predict_batch.restype = c_int
    lib.psf_client_predict_batch_recent.argtypes = [
        c_void_p, POINTER(c_char_p), c_size_t, c_char_p, POINTER(POINTER(Bar)),
        POINTER(c_size_t), POINTER(Prediction)]
    lib.psf_client_predict_batch_recent.restype = c_int
    lib.psf_client_ingest.argtypes = [c_void_p, POINTER(c_char_p), POINTER(Bar), c_size_t,
                                      POINTER(IngestResult), POINTER(IngestSummary)]
    lib.psf_client_ingest.restype = c_int
    lib.psf_client_model_info.argtypes = [c_void_p, c_char_p, c_size_t, POINTER(ModelInfo)]
    lib.psf_client_model_info.restype = c_int
    lib.psf_client_node_status.argtypes = [c_void_p, c_char_p, c_size_t,
                                           POINTER(POINTER(NodeStatus))]
    lib.psf_client_node_status.restype = c_int
    lib.psf_client_node_status_free.argtypes = [POINTER(NodeStatus)]
    lib.psf_client_node_status_free.restype = None
    lib.psf_client_status_name.argtypes = [c_int]
    lib.psf_client_status_name.restype = c_char_p
    lib.psf_client_sizeof.argtypes = [c_char_p]
    lib.psf_client_sizeof.restype = c_size_t


def _check(lib, path):
    for name in ("psf_client_predict_recent", "psf_client_node_status", "psf_client_sizeof",
                 "psf_client_ingest", "psf_client_predict_batch_recent"):
        if not hasattr(lib, name):
            raise OSError(f"{path} is an older libpsfleet_client without {name}: "
                          "install the library of the same psfleet version as this package")
    _declare(lib)
    for name, cls in _STRUCTS.items():
        have = lib.psf_client_sizeof(name.encode())
        if have != ctypes.sizeof(cls):
            raise OSError(f"{path}: struct {name} is {have} bytes there and "
                          f"{ctypes.sizeof(cls)} in this package: the package and the "
                          "library come from different psfleet versions")


def _candidates():
    """Where load_library looks when not told (see docs/client.md)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [env]  # set explicitly: that file and no other
    paths = [SONAME, "libpsfleet_client.so"]  # LD_LIBRARY_PATH, ld.so cache, /lib, /usr/lib
    found = ctypes.util.find_library("psfleet_client")
    if found:
        paths.append(found)
    for d in ("/usr/local/lib", "/usr/local/lib64", "/usr/local/lib/x86_64-linux-gnu",
              "/usr/lib/x86_64-linux-gnu"):
        paths.append(os.path.join(d, SONAME))
    return paths


def load_library(path=None):
    """Load libpsfleet_client and return it (once per process; later calls
    return the same library). path, else $PSFLEET_CLIENT_LIB, else the system's
    library search (LD_LIBRARY_PATH, ldconfig's cache, /usr/local/lib). Raises
    OSError naming what was tried."""
    global _lib, _lib_path
    with _lock:
        if _lib is not None:
            if path is not None and os.path.realpath(path) != os.path.realpath(_lib_path):
                raise OSError(f"libpsfleet_client is already loaded from {_lib_path}")
            return _lib
        tried = []
        for p in ([path] if path is not None else _candidates()):
            try:
                lib = ctypes.CDLL(p)
            except OSError as e:
                tried.append(f"{p} ({e})" if os.sep in p else p)
                continue
            _check(lib, p)
            _lib, _lib_path = lib, p
            return lib
        raise OSError("cannot load libpsfleet_client; tried: " + "; ".join(tried) +
                      f". Install it (cmake --install BUILD, then ldconfig) or set {ENV_VAR} "
                      "to the path of libpsfleet_client.so")


def library_path():
    """The path the library was loaded from, or None before it is loaded."""
    return _lib_path
