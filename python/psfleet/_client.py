"""Client: the Inference and Admin calls of one psfleet endpoint."""
import ctypes
import datetime
import math
import os
import re
import threading

from . import _native
from ._types import (TLS, Bar, IngestResult, IngestResults, ModelInfo, NodeStatus, Prediction,
                     Predictions, Row, WorkerStatus, error, for_date)

# What a failed connect_now open means, as `psfleet predict` says it.
_OPEN_REASONS = {
    14: "connection refused (nothing serves there)",
    16: "the TLS handshake failed (CA, server name, client certificate)",
    4: "no connection within the deadline",
    3: "invalid address or TLS files",
    8: "out of memory",
}


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def _cstr(what, s):
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if "\0" in s:
        raise ValueError(f"{what} contains a NUL character")
    return s.encode()


def _date(what, d):
    """YYYY-MM-DD text of a str, date, datetime, pandas Timestamp or numpy
    datetime64; None and "" stay None."""
    if d is None or d == "":
        return None
    if isinstance(d, str):
        return d
    if isinstance(d, (datetime.date, datetime.datetime)):  # pandas Timestamp too
        return d.strftime("%Y-%m-%d")
    if type(d).__name__ == "datetime64":
        return str(d)[:10]
    raise TypeError(f"{what} must be a YYYY-MM-DD str or a date, not {type(d).__name__}")


def _num(v):
    """A bar's optional field: None or NaN means unknown, which the wire says as 0."""
    if v is None:
        return 0.0
    v = float(v)
    return 0.0 if math.isnan(v) else v


def _bars_of(recent):
    """Bars from a list of Bar / dicts, or a pandas DataFrame with a close column
    and the date in a date column or the index."""
    if hasattr(recent, "to_dict") and hasattr(recent, "columns"):  # a DataFrame
        df = recent
        cols = {str(c).lower(): c for c in df.columns}
        if "close" not in cols:
            raise ValueError("recent: the DataFrame needs a close column")
        dates = df[cols["date"]] if "date" in cols else df.index
        rows = []
        for i, d in enumerate(dates):
            rows.append(Bar(d, df[cols["close"]].iloc[i],
                            *(df[cols[k]].iloc[i] if k in cols else None
                              for k in ("open", "high", "low", "volume"))))
        recent = rows
    out = []
    for i, b in enumerate(recent):
        if isinstance(b, dict):
            b = Bar(**b)
        if not isinstance(b, Bar):
            raise TypeError(f"recent[{i}] must be a psfleet.Bar or a dict, "
                            f"not {type(b).__name__}")
        out.append(b)
    arr = (_native.Bar * max(len(out), 1))()
    for i, b in enumerate(out):
        d = _date(f"recent[{i}].date", b.date)
        if d is None or len(d.encode()) > 10:
            raise ValueError(f"recent[{i}].date must be YYYY-MM-DD, not {b.date!r}")
        if b.close is None:
            raise ValueError(f"recent[{i}] ({d}): close is required")
        arr[i].date = d.encode()
        arr[i].close = float(b.close)
        arr[i].open, arr[i].high = _num(b.open), _num(b.high)
        arr[i].low, arr[i].volume = _num(b.low), _num(b.volume)
    return arr, len(out)


_ROW_FIELDS = ("symbol", "date", "close", "open", "high", "low", "volume")


def _rows_of(rows):
    """Rows for ingest: a DataFrame (symbol, date, close columns, optional
    open/high/low/volume; the date may be the index), or a list of psfleet.Row,
    dataclasses or objects with those attributes, dicts, or tuples in Row's
    order (symbol, date, close[, open, high, low, volume])."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        df = rows
        cols = {str(c).lower(): c for c in df.columns}
        for need in ("symbol", "close"):
            if need not in cols:
                raise ValueError(f"ingest: the DataFrame needs a {need} column")
        dates = df[cols["date"]] if "date" in cols else df.index
        out = []
        for i, d in enumerate(dates):
            out.append(Row(df[cols["symbol"]].iloc[i], d, df[cols["close"]].iloc[i],
                           *(df[cols[k]].iloc[i] if k in cols else None
                             for k in ("open", "high", "low", "volume"))))
        return out
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, Row):
            pass
        elif isinstance(r, dict):
            r = Row(**{k: r.get(k) for k in _ROW_FIELDS})
        elif isinstance(r, tuple) and not hasattr(r, "_fields"):
            if not 3 <= len(r) <= 7:
                raise ValueError(f"rows[{i}]: a tuple (symbol, date, close[, open, high, "
                                 f"low, volume]), not {len(r)} values")
            r = Row(*r)
        elif all(hasattr(r, k) for k in ("symbol", "date", "close")):  # dataclass, namedtuple
            r = Row(*(getattr(r, k, None) for k in _ROW_FIELDS))
        else:
            raise TypeError(f"rows[{i}] must be a psfleet.Row, a dict, a tuple or an object "
                            f"with symbol, date and close, not {type(r).__name__}")
        out.append(r)
    return out


def _prediction(p, asked=None):
    ok = p.status == 0
    nan = math.nan
    as_of = _text(p.as_of) if ok else ""
    return Prediction(
        symbol=_text(p.symbol) or (asked or ""),
        prediction=p.prediction if ok else nan,
        predicted_close=p.predicted_close if ok else nan,
        last_close=p.last_close if ok else nan,
        as_of=as_of, for_date=for_date(as_of), target=_text(p.target),
        model_version=p.model_version, status=p.status, message=_text(p.message))


class Client:
    """A client of the Inference service of a psfleet gateway or inferer.

    url: tcp://host:port, ipc:///path or tls+tcp://host:port. token: the fleet's
    shared secret (security.token_file's first line); or token_file: that file.
    tls: a psfleet.TLS (or a dict of its fields) for tls+tcp:// URLs. timeout:
    seconds each call may take. connect: True (default) connects now and raises
    at once when nothing serves at url; False connects in the background and
    reconnects after a drop (for a long-lived client of a fleet that may restart).
    library: path of libpsfleet_client.so (else $PSFLEET_CLIENT_LIB, else the
    system's library path).

    Calls raise PsfleetError subclasses (NotFound, Unavailable, ...) carrying
    .code, .status and .message. A Client may be shared by threads; close() it
    (or use it in a with block) when done."""

    def __init__(self, url, token=None, tls=None, *, token_file=None, timeout=10.0,
                 connect=True, library=None):
        self._lib = _native.load_library(library)
        self._h = None
        self._lock = threading.Lock()
        self.url = url
        if token is not None and token_file is not None:
            raise ValueError("give token or token_file, not both")
        if token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().rstrip("\r\n")
        if isinstance(tls, dict):
            tls = TLS(**tls)
        if tls is not None and not isinstance(tls, TLS):
            raise TypeError("tls must be a psfleet.TLS or a dict of its fields")
        is_tls = isinstance(url, str) and url.startswith("tls+tcp://")
        if tls is not None and not is_tls:
            raise ValueError(f"tls= needs a tls+tcp:// URL, not {url!r}")
        if (tls is not None) and ((tls.cert_file is None) != (tls.key_file is None)):
            raise ValueError("tls: give both cert_file and key_file, or neither")
        ms = int(round(float(timeout) * 1000))
        if not 1 <= ms <= 0xFFFFFFFF:
            raise ValueError("timeout must be a positive number of seconds")
        o = _native.Opts()
        o.timeout_ms = ms
        o.token = _cstr("token", token) if token is not None else None
        if tls is not None:
            for k in ("ca_file", "server_name", "cert_file", "key_file"):
                v = getattr(tls, k)
                if v is not None:
                    setattr(o, k, _cstr(f"tls.{k}", os.fspath(v)))
        o.connect_now = 1 if connect else 0
        h = ctypes.c_void_p()
        rc = self._lib.psf_client_open(_cstr("url", url), ctypes.byref(o), ctypes.byref(h))
        if rc != 0:
            reason = _OPEN_REASONS.get(rc, _text(self._lib.psf_client_status_name(rc)))
            if rc == 14 and is_tls:
                reason = ("connection refused or closed (nothing serves there, or the TLS "
                          "handshake failed: CA, server name, client certificate)")
            raise error(rc, f"cannot connect to {url}: {reason}")
        self._h = h

    def _handle(self):
        h = self._h
        if h is None:
            raise ValueError("psfleet.Client is closed")
        return h

    def close(self):
        """Close the connection. Calls under way on other threads must have
        returned. Closing twice is fine."""
        with self._lock:
            h, self._h = self._h, None
        if h is not None:
            self._lib.psf_client_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    def __repr__(self):
        return f"psfleet.Client({self.url!r}{'' if self._h else ', closed'})"

    def predict(self, symbol, as_of=None, recent=None):
        """The prediction for symbol from its bar of as_of (YYYY-MM-DD, a date or
        a Timestamp; None = its latest bar). recent: bars the fleet has not seen
        (psfleet.Bar, dicts, or a DataFrame with close and a date column or
        index), appended after the stored bars dated before the first of them;
        the prediction starts from the last. Returns a Prediction; raises the
        PsfleetError of its status."""
        sym = _cstr("symbol", symbol)
        day = _date("as_of", as_of)
        bars, n = _bars_of(recent) if recent is not None else (None, 0)
        out = _native.Prediction()
        self._lib.psf_client_predict_recent(self._handle(), sym,
                                            day.encode() if day else None, bars, n,
                                            ctypes.byref(out))
        if out.status != 0:
            raise error(out.status, _text(out.message), symbol)
        return _prediction(out)

    def predict_batch(self, symbols, as_of=None, recent=None):
        """Predictions for many symbols in one call, in their order (a
        Predictions list; .to_frame() for a DataFrame). recent: bars the fleet
        has not seen, per symbol: a dict {symbol: bars} (bars as predict takes
        them), or a DataFrame with a symbol column (its rows grouped by
        symbol; rows of other symbols are left out). A symbol without a
        prediction has its own status and message (p.ok is False,
        p.raise_for_status() raises); a call that fails as a whole raises."""
        if isinstance(symbols, str):
            raise TypeError("predict_batch wants a list of symbols; use predict for one")
        symbols = list(symbols)
        syms = [_cstr(f"symbols[{i}]", s) for i, s in enumerate(symbols)]
        day = _date("as_of", as_of)
        if not syms:
            return Predictions()
        arr = (ctypes.c_char_p * len(syms))(*syms)
        out = (_native.Prediction * len(syms))()
        if recent is not None:
            if hasattr(recent, "groupby") and hasattr(recent, "columns"):  # a DataFrame
                cols = {str(c).lower(): c for c in recent.columns}
                if "symbol" not in cols:
                    raise ValueError("recent: the DataFrame needs a symbol column")
                asked = set(symbols)  # a whole day's frame: the symbols asked for
                recent = {s: g.drop(columns=[cols["symbol"]])
                          for s, g in recent.groupby(cols["symbol"], sort=False) if s in asked}
            if not isinstance(recent, dict):
                raise TypeError("recent must be a dict {symbol: bars} or a DataFrame")
            unknown = set(recent) - set(symbols)
            if unknown:
                raise ValueError(f"recent has bars of symbols not asked for: "
                                 f"{sorted(unknown)[:5]}")
            keep = [_bars_of(recent[s]) if s in recent else (None, 0) for s in symbols]
            bars = (ctypes.POINTER(_native.Bar) * len(syms))(
                *(ctypes.cast(b, ctypes.POINTER(_native.Bar)) if b is not None else None
                  for b, _ in keep))
            counts = (ctypes.c_size_t * len(syms))(*(n for _, n in keep))
            rc = self._lib.psf_client_predict_batch_recent(
                self._handle(), arr, len(syms), day.encode() if day else None, bars, counts,
                out)
        else:
            rc = self._lib.psf_client_predict_batch(self._handle(), arr, len(syms),
                                                    day.encode() if day else None, out)
        if rc != 0:
            raise error(rc, _text(out[0].message))
        return Predictions(_prediction(out[i], symbols[i]) for i in range(len(syms)))

    def ingest(self, rows):
        """Append new daily bars to the fleet (the Ingest RPC; through a
        gateway every replica of a symbol's shard stores them). rows: a pandas
        DataFrame with symbol, date and close columns (open, high, low, volume
        optional; the date may be the index), or a list of psfleet.Row,
        dataclasses or objects with those attributes, dicts, or tuples
        (symbol, date, close[, open, high, low, volume]). Returns IngestResults:
        one IngestResult per row, in order (status 0 = stored; a bad, duplicate
        or older row has its own status and message and nothing changed), with
        .accepted, .model_version, .finetune_steps and .finetune_rows. A call
        that fails as a whole raises."""
        items = _rows_of(rows)
        if not items:
            return IngestResults()
        n = len(items)
        syms = [_cstr(f"rows[{i}].symbol", str(r.symbol)) for i, r in enumerate(items)]
        bars = (_native.Bar * n)()
        dates = []
        for i, r in enumerate(items):
            d = _date(f"rows[{i}].date", r.date)
            if d is None or len(d.encode()) > 10:
                raise ValueError(f"rows[{i}].date must be YYYY-MM-DD, not {r.date!r}")
            if r.close is None:
                raise ValueError(f"rows[{i}] ({r.symbol} {d}): close is required")
            dates.append(d)
            bars[i].date = d.encode()
            bars[i].close = float(r.close)
            bars[i].open, bars[i].high = _num(r.open), _num(r.high)
            bars[i].low, bars[i].volume = _num(r.low), _num(r.volume)
        arr = (ctypes.c_char_p * n)(*syms)
        res = (_native.IngestResult * n)()
        summ = _native.IngestSummary()
        rc = self._lib.psf_client_ingest(self._handle(), arr, bars, n, res,
                                         ctypes.byref(summ))
        if rc != 0:
            raise error(rc, _text(res[0].message))
        return IngestResults(
            (IngestResult(str(items[i].symbol), dates[i], res[i].status, _text(res[i].message))
             for i in range(n)),
            accepted=summ.accepted, model_version=summ.model_version,
            finetune_steps=summ.finetune_steps, finetune_rows=summ.finetune_rows)

    def model_info(self):
        """The model served (ModelInfo): version, kind, target, features,
        tensors, test metrics, and the answering inferer's shard."""
        mi = _native.ModelInfo()
        err = ctypes.create_string_buffer(256)
        rc = self._lib.psf_client_model_info(self._handle(), err, len(err), ctypes.byref(mi))
        if rc != 0:
            raise error(rc, _text(err.value))
        split = (lambda s, sep: [x for x in _text(s).split(sep) if x])
        return ModelInfo(
            model_version=mi.model_version, trained_steps=mi.trained_steps,
            model=_text(mi.model), target=_text(mi.target),
            features=split(mi.features, ","),
            tensors=re.findall(r"[^ ]+\[\d+ x \d+\](?:/symbol)?", _text(mi.tensors)),
            shard_versions=[int(v) for v in split(mi.shard_versions, ",")],
            test_rmse=mi.test_rmse, test_mae=mi.test_mae, naive_rmse=mi.naive_rmse,
            symbols=mi.symbols, shard=mi.shard, shards=mi.shards, node=_text(mi.node))

    def status(self):
        """What the node at this URL says about itself (Admin/Status): a
        NodeStatus with its id, role, readiness, model version, uptime and its
        role's extra facts."""
        p = ctypes.POINTER(_native.NodeStatus)()
        err = ctypes.create_string_buffer(256)
        rc = self._lib.psf_client_node_status(self._handle(), err, len(err), ctypes.byref(p))
        if rc != 0:
            raise error(rc, _text(err.value))
        try:
            s = p.contents
            return NodeStatus(
                node=_text(s.node), role=_text(s.role), ready=bool(s.ready),
                model_version=s.model_version, uptime_seconds=s.uptime_seconds,
                extra={_text(s.extra[i].key): _text(s.extra[i].value)
                       for i in range(s.n_extra)},
                workers=[WorkerStatus(_text(w.worker), w.clock, bool(w.live), w.last_seq,
                                      w.pushes)
                         for w in (s.workers[i] for i in range(s.n_workers))])
        finally:
            self._lib.psf_client_node_status_free(p)
