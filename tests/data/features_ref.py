#!/usr/bin/env python3
"""Reference values for tests/unit/features_test.c, written independently of the C code.

Reads ref_prices.csv and writes features_ref.csv: one line per (symbol, date) row
that survives, with the features, targets, naive forecasts and the train/test split,
following pandas semantics on each symbol's frame sorted by date:
  lag:N = close.shift(N), return:N = close.pct_change(N), sma:N = rolling(N).mean(),
  std:N = rolling(N).std() (ddof=1), ratio_sma:N = close / sma:N,
  ewm:N = close.ewm(span=N, adjust=True, min_periods=N).mean(),
  range = (high - low) / close, dow = weekday (0 = Monday),
  volume:N = log(volume).rolling(N).mean(),
  targets from close.shift(-1), then dropna().
Plain python (no pandas/numpy here); rerun with `python3 features_ref.py` in this
directory after changing the input or the feature list.
"""
import csv
import datetime
import math

FEATURES = ["lag:0", "lag:2", "return:1", "return:3", "sma:3", "std:4", "ratio_sma:3",
            "ewm:4", "range", "dow", "volume:3"]
TEST_FRACTION = 0.25
NAN = float("nan")


def shift(x, n):
    return [x[i - n] if 0 <= i - n < len(x) else NAN for i in range(len(x))]


def rolling(x, n, fn):
    out = []
    for i in range(len(x)):
        w = x[i - n + 1:i + 1] if i >= n - 1 else None
        out.append(NAN if w is None or any(math.isnan(v) for v in w) else fn(w))
    return out


def mean(w):
    return sum(w) / len(w)


def sample_std(w):
    m = mean(w)
    return math.sqrt(sum((v - m) ** 2 for v in w) / (len(w) - 1))


def ewm(x, span):
    # Explicit weights rather than the recursion the C code uses.
    a = 2.0 / (span + 1.0)
    out = []
    for t in range(len(x)):
        ws = [(1 - a) ** i for i in range(t + 1)]
        v = sum(w * x[t - i] for i, w in enumerate(ws)) / sum(ws)
        out.append(v if t >= span - 1 else NAN)
    return out


def feature(name, rows):
    close = [r["close"] for r in rows]
    kind, _, n = name.partition(":")
    n = int(n) if n else 0
    if kind == "lag":
        return shift(close, n)
    if kind == "return":
        prev = shift(close, n)
        return [c / p - 1 if not math.isnan(p) else NAN for c, p in zip(close, prev)]
    if kind == "sma":
        return rolling(close, n, mean)
    if kind == "std":
        return rolling(close, n, sample_std)
    if kind == "ratio_sma":
        return [c / s if not math.isnan(s) else NAN for c, s in zip(close, rolling(close, n, mean))]
    if kind == "ewm":
        return ewm(close, n)
    if kind == "range":
        return [(r["high"] - r["low"]) / r["close"] for r in rows]
    if kind == "dow":
        return [float(r["date"].weekday()) for r in rows]
    if kind == "volume":
        logs = [math.log(r["volume"]) if r["volume"] > 0 else NAN for r in rows]
        return rolling(logs, n, mean)
    raise ValueError(name)


def number(s):
    return float(s) if s.strip() else NAN


def main():
    by_symbol = {}
    with open("ref_prices.csv") as f:
        for rec in csv.DictReader(f):
            row = {"date": datetime.date.fromisoformat(rec["date"]), "close": number(rec["close"]),
                   "high": number(rec["high"]), "low": number(rec["low"]),
                   "volume": number(rec["volume"])}
            by_symbol.setdefault(rec["symbol"], []).append(row)
    dates = sorted({r["date"] for rows in by_symbol.values() for r in rows})
    n_test = min(max(math.ceil(len(dates) * TEST_FRACTION - 1e-9), 1), len(dates) - 1)
    cutoff = dates[len(dates) - n_test]

    out = []
    for sym in sorted(by_symbol):
        rows = sorted(by_symbol[sym], key=lambda r: r["date"])
        cols = [feature(name, rows) for name in FEATURES]
        close = [r["close"] for r in rows]
        nxt = shift(close, -1)
        for t, r in enumerate(rows):
            vals = [c[t] for c in cols]
            if math.isnan(nxt[t]) or any(math.isnan(v) or math.isinf(v) for v in vals):
                continue
            ret = nxt[t] / close[t] - 1
            prev_ret = close[t] / close[t - 1] - 1 if t > 0 else NAN
            out.append([sym, r["date"].isoformat(), int(r["date"] >= cutoff)] + vals +
                       [nxt[t], ret, int(ret > 0), close[t], 0.0, int(prev_ret > 0)])

    with open("features_ref.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["symbol", "date", "is_test"] + FEATURES +
                   ["next_close", "next_return", "next_direction",
                    "naive_close", "naive_return", "naive_direction"])
        for rec in out:
            w.writerow([v if isinstance(v, (str, int)) else repr(v) for v in rec])
    print("cutoff", cutoff.isoformat(), "rows", len(out))


if __name__ == "__main__":
    main()
