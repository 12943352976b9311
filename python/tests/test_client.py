"""Tests of the psfleet package against a real fleet (tests/integration/python_test.sh
starts it and sets the environment below). Values are compared with what
`psfleet predict --json` prints for the same symbol and date.

PSFLEET               the psfleet binary
PSFLEET_TEST_URL      the gateway (tls+tcp://, mutual TLS, server name psfleet-node)
PSFLEET_TEST_CERTS    its certificates: ca.pem, node.pem, node.key
PSFLEET_TEST_INFERER  the inferer behind it (ipc://)
PSFLEET_TEST_TOKEN_FILE, PSFLEET_TEST_DATA (the fleet's CSV), PSFLEET_TEST_CLOSED_URL
"""
import csv
import dataclasses
import datetime
import json
import math
import os
import subprocess
import sys
import threading
import time
import unittest
from unittest import mock

import psfleet

ENV = ("PSFLEET", "PSFLEET_TEST_URL", "PSFLEET_TEST_CERTS", "PSFLEET_TEST_INFERER", "PSFLEET_TEST_TOKEN_FILE",
       "PSFLEET_TEST_DATA", "PSFLEET_TEST_CLOSED_URL")
missing = [k for k in ENV if not os.environ.get(k)]
if missing:
    raise RuntimeError("run through tests/integration/python_test.sh (ctest -R python): "
                       "missing " + ", ".join(missing))
URL = os.environ["PSFLEET_TEST_URL"]
INFERER = os.environ["PSFLEET_TEST_INFERER"]
TOKEN_FILE = os.environ["PSFLEET_TEST_TOKEN_FILE"]
CERTS = os.environ["PSFLEET_TEST_CERTS"]
TLS = psfleet.TLS(ca_file=os.path.join(CERTS, "ca.pem"), server_name="psfleet-node",
                  cert_file=os.path.join(CERTS, "node.pem"),
                  key_file=os.path.join(CERTS, "node.key"))
SYMS = ["S0000", "S0003", "S0007", "S0012", "S0029"]

try:
    import pandas
except ImportError:
    pandas = None


def cli(*args):
    """`psfleet predict --json` for the gateway: the list it prints."""
    r = subprocess.run([os.environ["PSFLEET"], "predict", *CLI_CONNECT, "--json", *args],
                       capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout)


CLI_CONNECT = ["--connect", URL, "--token-file", TOKEN_FILE, "--ca-file", TLS.ca_file,
               "--server-name", TLS.server_name, "--cert", TLS.cert_file, "--key", TLS.key_file]


def rows(symbol):
    with open(os.environ["PSFLEET_TEST_DATA"], newline="") as f:
        return [r for r in csv.DictReader(f) if r["symbol"] == symbol]


def same_as_cli(test, p, want):
    test.assertEqual(want["status"], "OK", want)
    test.assertEqual(p.status, 0)
    test.assertTrue(p.ok)
    test.assertEqual(p.symbol, want["symbol"])
    test.assertEqual(p.prediction, want["prediction"])  # %.17g: the same double
    test.assertEqual(p.predicted_close, want["predicted_close"])
    test.assertEqual(p.last_close, want["last_close"])
    test.assertEqual(p.as_of, want["as_of"])
    test.assertEqual(p.for_date, want["for_date"])
    test.assertEqual(p.target, want["target"])
    test.assertEqual(p.model_version, want["model_version"])


class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = psfleet.Client(URL, token_file=TOKEN_FILE, tls=TLS, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_predict_equals_cli(self):
        for sym in SYMS[:2]:
            for as_of in (None, "2024-12-20", "2024-12-21"):  # the 21st is a Saturday
                with self.subTest(sym=sym, as_of=as_of):
                    want = cli(sym, *(["--as-of", as_of] if as_of else []))[0]
                    same_as_cli(self, self.c.predict(sym, as_of=as_of), want)
        p = self.c.predict("S0000", as_of="2024-12-21")
        self.assertEqual((p.as_of, p.for_date), ("2024-12-20", "2024-12-23"))
        # a date object, a datetime and a Timestamp say the same day
        days = [datetime.date(2024, 12, 20), datetime.datetime(2024, 12, 20, 15, 30)]
        if pandas is not None:
            days.append(pandas.Timestamp("2024-12-20"))
        for d in days:
            self.assertEqual(self.c.predict("S0000", as_of=d), p)
        self.assertEqual(p.target, "next_return")
        self.assertAlmostEqual(p.predicted_close, p.last_close * (1 + p.prediction), places=9)

    def test_unknown_symbol_raises_not_found(self):
        with self.assertRaises(psfleet.NotFound) as cm:
            self.c.predict("NOPE")
        e = cm.exception
        self.assertIsInstance(e, psfleet.PsfleetError)
        self.assertEqual((e.code, e.status), (5, "NOT_FOUND"))
        self.assertEqual(e.message, "unknown symbol 'NOPE'")
        self.assertEqual(e.symbol, "NOPE")
        self.assertEqual(str(e), "NOT_FOUND: unknown symbol 'NOPE'")

    def test_bad_arguments(self):
        with self.assertRaises(psfleet.InvalidArgument) as cm:
            self.c.predict("S0000", as_of="2024-13-45")
        self.assertEqual(cm.exception.code, 3)
        self.assertIn("2024-13-45", cm.exception.message)
        with self.assertRaises(psfleet.FailedPrecondition) as cm:
            self.c.predict("S0000", as_of="2024-01-01")  # before the history it keeps
        self.assertEqual(cm.exception.code, 9)
        with self.assertRaises(TypeError):
            self.c.predict(7)
        with self.assertRaises(ValueError):
            self.c.predict("S\0000")
        with self.assertRaises(TypeError):
            self.c.predict_batch("S0000")

    def test_predict_batch_equals_cli(self):
        got = self.c.predict_batch(SYMS + ["NOPE"])
        self.assertIsInstance(got, psfleet.Predictions)
        want = cli(*SYMS)
        self.assertEqual(len(got), len(SYMS) + 1)
        for p, w in zip(got, want):
            same_as_cli(self, p, w)
        bad = got[-1]
        self.assertEqual((bad.symbol, bad.status, bad.status_name), ("NOPE", 5, "NOT_FOUND"))
        self.assertEqual(bad.message, "unknown symbol 'NOPE'")
        self.assertFalse(bad.ok)
        self.assertTrue(math.isnan(bad.prediction))
        self.assertEqual((bad.as_of, bad.for_date), ("", ""))
        self.assertEqual(got.failed, [bad])
        with self.assertRaises(psfleet.NotFound):
            bad.raise_for_status()
        self.assertIs(got[0].raise_for_status(), got[0])
        # as_of applies to every symbol
        dated = self.c.predict_batch(SYMS[:3], as_of=datetime.date(2024, 12, 20))
        for p, w in zip(dated, cli(*SYMS[:3], "--as-of", "2024-12-20")):
            same_as_cli(self, p, w)
        self.assertEqual(self.c.predict_batch([]), [])

    def test_recent_bars(self):
        hist = rows("S0001")
        base = self.c.predict("S0001")
        self.assertEqual(base.as_of, hist[-1]["date"])
        # the fleet's own last bars, sent again: the same prediction
        same = [psfleet.Bar(r["date"], float(r["close"]), float(r["open"]), float(r["high"]),
                            float(r["low"]), float(r["volume"])) for r in hist[-3:]]
        self.assertEqual(self.c.predict("S0001", recent=same), base)
        # a new day: the prediction starts from it
        day = base.for_date
        close = base.last_close * 1.03
        new = same + [{"date": day, "close": close, "high": close * 1.01, "low": close * 0.99}]
        p = self.c.predict("S0001", recent=new)
        self.assertEqual((p.as_of, p.last_close), (day, close))
        self.assertEqual(p.for_date, psfleet.for_date(day))
        self.assertNotEqual(p.prediction, base.prediction)
        self.assertAlmostEqual(p.predicted_close, close * (1 + p.prediction), places=9)
        # the same bars as a DataFrame (dates in the index) say the same
        if pandas is not None:
            cols = ("close", "high", "low")
            recs = [{"date": pandas.Timestamp(b.date), **{k: getattr(b, k) for k in cols}}
                    if isinstance(b, psfleet.Bar)
                    else {"date": pandas.Timestamp(b["date"]), **{k: b[k] for k in cols}}
                    for b in new]
            df = pandas.DataFrame(recs).set_index("date")
            want = self.c.predict("S0001", recent=[dict(r, date=r["date"].date()) for r in recs])
            self.assertEqual(self.c.predict("S0001", recent=df), want)
            self.assertEqual(want.as_of, day)
        # out of order, and no close: the server names the bar
        with self.assertRaises(psfleet.InvalidArgument) as cm:
            self.c.predict("S0001", recent=[same[1], same[0]])
        self.assertIn("recent bar 1", cm.exception.message)
        with self.assertRaises(psfleet.InvalidArgument) as cm:
            self.c.predict("S0001", recent=[psfleet.Bar(day, -1.0)])
        self.assertIn("close must be", cm.exception.message)
        with self.assertRaises(ValueError):
            self.c.predict("S0001", recent=[psfleet.Bar("2025-01-0100", 1.0)])

    def test_predict_batch_recent(self):
        hist = rows("S0001")
        base = self.c.predict("S0001")
        close = base.last_close * 0.98
        bars = [{"date": base.for_date, "close": close, "high": close * 1.01,
                 "low": close * 0.99}]
        want = self.c.predict("S0001", recent=bars)
        got = self.c.predict_batch(["S0000", "S0001"], recent={"S0001": bars})
        self.assertEqual(got[1], want)  # the same bars as predict's: the same answer
        self.assertEqual(got[0], self.c.predict("S0000"))  # no bars: the stored history
        if pandas is not None:
            df = pandas.DataFrame([dict(b, symbol="S0001") for b in bars] +
                                  [dict(b, symbol="S0002") for b in bars])  # not asked: left out
            self.assertEqual(self.c.predict_batch(["S0000", "S0001"], recent=df)[1], want)
        # a bad bar fails its own item only
        got = self.c.predict_batch(["S0000", "S0001"],
                                   recent={"S0001": [psfleet.Bar(base.for_date, -1.0)]})
        self.assertTrue(got[0].ok)
        self.assertEqual(got[1].status_name, "INVALID_ARGUMENT")
        self.assertIn("close must be", got[1].message)
        with self.assertRaises(ValueError):
            self.c.predict_batch(["S0000"], recent={"S0001": bars})
        self.assertEqual(hist[-1]["date"], base.as_of)

    def test_ingest_and_finetune(self):
        """Ingest a day's bars: per-row statuses, the new bar served at once, and
        the fine-tuned model (training.finetune.steps: 3) served soon after."""
        last15 = rows("S0015")[-1]
        last16 = rows("S0016")[-1]
        base = self.c.predict("S0015")
        day = base.for_date
        close = base.last_close * 1.02
        bar = psfleet.Bar(day, close, close, close * 1.01, close * 0.99, 1000.0)
        before = self.c.predict("S0015", recent=[bar])  # the new bar, the trained weights
        v0 = before.model_version

        @dataclasses.dataclass
        class MyBar:
            symbol: str
            date: str
            close: float

        res = self.c.ingest([
            psfleet.Row("S0015", day, close, close, close * 1.01, close * 0.99, 1000.0),
            ("S0016", last16["date"], float(last16["close"]), float(last16["open"]),
             float(last16["high"]), float(last16["low"]), float(last16["volume"])),
            MyBar("S0016", "2020-01-02", 5.0),
            {"symbol": "S0017", "date": day, "close": -1.0},
        ])
        self.assertEqual([r.status_name for r in res],
                         ["OK", "ALREADY_EXISTS", "FAILED_PRECONDITION", "INVALID_ARGUMENT"])
        self.assertIn("the identical bar is already stored", res[1].message)
        self.assertIn("older than the last date", res[2].message)
        self.assertEqual((res.accepted, res.finetune_steps, res.finetune_rows), (1, 3, 1))
        self.assertEqual(res.model_version, v0)
        self.assertEqual([r.symbol for r in res.failed], ["S0016", "S0016", "S0017"])
        p = self.c.predict("S0015")  # at once: the new bar
        self.assertEqual((p.as_of, p.last_close), (day, close))
        deadline = time.monotonic() + 30
        while p.model_version < v0 + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            p = self.c.predict("S0015")
        self.assertEqual(p.model_version, v0 + 3)  # one round of 3 steps
        self.assertNotEqual(p.prediction, before.prediction)
        self.assertEqual(self.c.predict("S0016").as_of, last16["date"])  # refused: unchanged
        self.assertEqual(rows("S0015")[-1], last15)  # the data file is never written
        if pandas is not None:
            self.assertEqual(list(res.to_frame()["status"]), [0, 6, 9, 3])
            nxt = psfleet.for_date(day)
            c2 = close * 1.01
            df = pandas.DataFrame({"symbol": ["S0015"], "date": [pandas.Timestamp(nxt)],
                                   "close": [c2], "high": [c2 * 1.01], "low": [c2 * 0.99],
                                   "volume": [1000.0]})
            res = self.c.ingest(df)
            self.assertEqual([r.status for r in res], [0])
            deadline = time.monotonic() + 30
            while self.c.predict("S0015").model_version < v0 + 6 and time.monotonic() < deadline:
                time.sleep(0.05)
            p = self.c.predict("S0015")
            self.assertEqual((p.as_of, p.model_version), (nxt, v0 + 6))

    def test_model_info(self):
        mi = self.c.model_info()
        p = self.c.predict("S0000")
        self.assertEqual(mi.model_version, p.model_version)
        self.assertEqual((mi.model, mi.target), ("linear", "next_return"))
        self.assertEqual(mi.features, ["return:1", "return:2", "ratio_sma:5", "range", "dow"])
        self.assertEqual(mi.shard_versions, [mi.model_version])
        self.assertEqual((mi.symbols, mi.shard, mi.shards, mi.node), (30, 0, 1, "inferer-0"))
        self.assertGreater(mi.trained_steps, 0)
        self.assertGreater(mi.test_rmse, 0)
        self.assertEqual(mi.tensors, ["out.w[1 x 5]", "out.b[1 x 1]", "sym_bias[1 x 1]/symbol"])
        r = subprocess.run([os.environ["PSFLEET"], "predict", *CLI_CONNECT, "--info"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn(f"version        {mi.model_version} ", r.stdout)
        self.assertIn(f"{mi.trained_steps} optimizer steps", r.stdout)

    def test_status(self):
        gw = self.c.status()
        self.assertEqual((gw.node, gw.role, gw.ready), ("gateway", "gateway", True))
        self.assertEqual(gw.extra.get("route"), "symbol")
        self.assertIn("inferer-0", gw.extra)
        self.assertIn("shard 0, up, version", gw.extra["inferer-0"])
        self.assertGreater(gw.uptime_seconds, 0)
        with psfleet.Client(INFERER, token_file=TOKEN_FILE) as inf:
            st = inf.status()
            self.assertEqual((st.node, st.role, st.ready), ("inferer-0", "inferer", True))
            self.assertEqual(st.model_version, self.c.model_info().model_version)
            self.assertEqual(st.extra["symbols"], "30")
            self.assertEqual(st.extra["shard"], "0/1")
            self.assertEqual(st.workers, [])
            # the inferer serves predictions too: the same as through the gateway
            self.assertEqual(inf.predict("S0003"), self.c.predict("S0003"))

    def test_token(self):
        with psfleet.Client(URL, token="wrong", tls=TLS) as bad:
            with self.assertRaises(psfleet.Unauthenticated) as cm:
                bad.predict("S0000")
            self.assertEqual((cm.exception.code, cm.exception.status), (16, "UNAUTHENTICATED"))
            with self.assertRaises(psfleet.Unauthenticated):
                bad.status()
            with self.assertRaises(psfleet.Unauthenticated):
                bad.predict_batch(SYMS)
        with psfleet.Client(URL, tls=TLS) as none:
            with self.assertRaises(psfleet.Unauthenticated):
                none.model_info()
        with open(TOKEN_FILE) as f:
            token = f.readline().strip()
        with psfleet.Client(URL, token=token, tls=dataclasses.asdict(TLS)) as good:
            self.assertEqual(good.predict("S0000"), self.c.predict("S0000"))

    def test_closed_port_fails_fast(self):
        closed = os.environ["PSFLEET_TEST_CLOSED_URL"]
        t0 = time.monotonic()
        with self.assertRaises(psfleet.Unavailable) as cm:
            psfleet.Client(closed, token_file=TOKEN_FILE)  # timeout 10 s
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(cm.exception.code, 14)
        self.assertEqual(cm.exception.message,
                         f"cannot connect to {closed}: connection refused (nothing serves there)")
        # connect=False dials in the background: the call fails at its deadline
        with psfleet.Client(closed, connect=False, timeout=0.5) as c:
            with self.assertRaises(psfleet.PsfleetError) as cm:
                c.predict("S0000")
            self.assertIn(cm.exception.code, (4, 14))
        with self.assertRaises(psfleet.InvalidArgument):
            psfleet.Client("nope://x")
        with self.assertRaises(ValueError):
            psfleet.Client(closed, tls=TLS)  # tls for a tcp:// URL

    def test_tls(self):
        # the server's certificate does not carry the name expected
        t0 = time.monotonic()
        with self.assertRaises(psfleet.PsfleetError) as cm:
            psfleet.Client(URL, token_file=TOKEN_FILE,
                           tls=dataclasses.replace(TLS, server_name="other-name"))
        self.assertIn(cm.exception.code, (14, 16))
        self.assertIn("TLS handshake failed", cm.exception.message)
        # mutual TLS: no client certificate, no connection
        with self.assertRaises(psfleet.PsfleetError) as cm:
            psfleet.Client(URL, token_file=TOKEN_FILE, timeout=3,
                           tls=psfleet.TLS(TLS.ca_file, TLS.server_name))
        self.assertIn(cm.exception.code, (4, 14, 16))
        self.assertLess(time.monotonic() - t0, 8)
        # a key without its certificate, and a missing CA file: refused before dialing
        with self.assertRaises(ValueError):
            psfleet.Client(URL, tls=psfleet.TLS(TLS.ca_file, key_file=TLS.key_file))
        with self.assertRaises(psfleet.InvalidArgument):
            psfleet.Client(URL, tls=psfleet.TLS("/nonexistent/ca.pem"))

    def test_threads_share_a_client(self):
        want = {p.symbol: p for p in self.c.predict_batch(SYMS)}
        errors = []

        def run():
            try:
                for _ in range(20):
                    for s in SYMS:
                        if self.c.predict(s) != want[s]:
                            errors.append(s)
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(repr(e))
        ts = [threading.Thread(target=run) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])

    def test_closed_client(self):
        c = psfleet.Client(URL, token_file=TOKEN_FILE, tls=TLS)
        c.close()
        c.close()
        with self.assertRaises(ValueError):
            c.predict("S0000")

    @unittest.skipIf(pandas is None, "pandas is not installed")
    def test_frame(self):
        got = self.c.predict_batch(SYMS + ["NOPE"])
        df = got.to_frame()
        self.assertEqual(list(df.columns), ["symbol", "prediction", "predicted_close",
                                            "last_close", "as_of", "for_date", "target",
                                            "model_version", "status", "message"])
        self.assertEqual(len(df), len(SYMS) + 1)
        self.assertEqual(list(df["symbol"]), SYMS + ["NOPE"])
        self.assertEqual(list(df["prediction"][:-1]), [p.prediction for p in got[:-1]])
        self.assertTrue(pandas.api.types.is_datetime64_any_dtype(df["as_of"]))
        self.assertEqual(df["as_of"].iloc[0], pandas.Timestamp(got[0].as_of))
        self.assertTrue(pandas.isna(df["as_of"].iloc[-1]))
        self.assertEqual(list(df["status"]), [0] * len(SYMS) + [5])
        one = psfleet.to_frame(self.c.predict("S0000"))
        self.assertEqual(len(one), 1)
        mi = psfleet.to_frame(self.c.model_info())
        self.assertEqual(mi["model"].iloc[0], "linear")
        st = psfleet.to_frame(self.c.status())
        self.assertEqual(st["role"].iloc[0], "gateway")


class OfflineTest(unittest.TestCase):
    def test_for_date_skips_weekends(self):
        self.assertEqual(psfleet.for_date("2024-12-31"), "2025-01-01")
        self.assertEqual(psfleet.for_date("2024-12-20"), "2024-12-23")  # Fri -> Mon
        self.assertEqual(psfleet.for_date(""), "")

    def test_frame_without_pandas(self):
        p = psfleet.Prediction("S", 0.1, 1.1, 1.0, "2024-12-31", "2025-01-01", "next_return", 1)
        with mock.patch.dict(sys.modules, {"pandas": None}):
            with self.assertRaises(ImportError) as cm:
                psfleet.to_frame([p])
            self.assertIn("python3-pandas", str(cm.exception))
            with self.assertRaises(ImportError):
                psfleet.Predictions([p]).to_frame()

    def test_library_found_and_checked(self):
        lib = psfleet.load_library()
        self.assertEqual(psfleet.library_path(), os.environ["PSFLEET_CLIENT_LIB"])
        self.assertIs(psfleet.load_library(os.environ["PSFLEET_CLIENT_LIB"]), lib)
        with self.assertRaises(OSError):
            psfleet.load_library("/nonexistent/libpsfleet_client.so")

    def test_errors_map_codes(self):
        for code, cls in ((3, psfleet.InvalidArgument), (4, psfleet.DeadlineExceeded),
                          (5, psfleet.NotFound), (9, psfleet.FailedPrecondition),
                          (14, psfleet.Unavailable), (16, psfleet.Unauthenticated)):
            with self.subTest(code=code):
                p = psfleet.Prediction("S", math.nan, math.nan, math.nan, "", "", "", 0,
                                       status=code, message="why")
                with self.assertRaises(cls) as cm:
                    p.raise_for_status()
                self.assertEqual((cm.exception.code, cm.exception.message), (code, "why"))


if __name__ == "__main__":
    unittest.main()
