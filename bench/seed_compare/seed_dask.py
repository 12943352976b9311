#!/usr/bin/python3
"""seed_dask.py -- the seed chapter's Dask + XGBoost pipeline, timed per stage.

A transcription of the seed chapter's case study, Chapter 85, §85.8 "Case Study:
Scaling NEPSE Prediction with Dask" (/work/shared/seed-chapter.md): a Dask
distributed client, data partitioned by symbol, engineer_features() per
partition through map_partitions, xgb.dask.DaskDMatrix + xgb.dask.train with the
chapter's params and 100 rounds, save_model, xgb.dask.predict(...).compute().

What is adapted, and only that:
- Paths. The chapter reads 'data/partitions/symbol=*/*.parquet', one partition
  per symbol. Here the same layout is CSV: `psfleet data partition` writes
  DIR/symbol=XYZ/data.csv (date,symbol,open,high,low,close,volume), and
  dd.read_csv on the glob makes one partition per file, so map_partitions sees
  one symbol per partition, as the chapter requires. (Debian has no pyarrow for
  read_parquet; the issue's data is a CSV.)
- The cluster. The chapter asks Client(n_workers=4, threads_per_worker=2,
  memory_limit='4GB'); on the 2-core bench machine that oversubscribes the cores,
  so the default is the issue's LocalCluster with 2 workers of 1 thread
  (--workers/--threads give the chapter's 4 x 2).
- A train/test split, so that the test RMSE is comparable with psfleet's: rows
  dated >= --cutoff (the first date of the last 20% of dates, psfleet's
  psf_data_cutoff_date) are predicted ("new_data" of step 6), earlier rows
  train. Test rows are exactly psfleet's: a row needs its features and a next
  close, the chapter's dropna().
- Timing. Dask is lazy, so each stage is persisted and waited for, which is
  what makes per-stage times measurable; it also saves Dask re-reading the
  CSVs for predict (it can only make this side faster).
Prints `dask_<stage>_seconds S` lines, `dask_test_rmse`, `dask_test_n`.
"""
import argparse
import math
import os
import sys
import time

T0 = time.perf_counter()

import dask  # noqa: E402,F401  (imports are timed: part of starting the pipeline)
import dask.dataframe as dd  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402,F401
import xgboost as xgb  # noqa: E402
from dask.distributed import Client, wait  # noqa: E402

T_IMPORT = time.perf_counter()


# The chapter's function, verbatim (§85.8 step 2).
def engineer_features(partition):
    # partition is a pandas DataFrame for a single symbol (due to partitioning)
    partition = partition.sort_values('date')
    partition['lag_1'] = partition['close'].shift(1)
    partition['lag_5'] = partition['close'].shift(5)
    partition['sma_10'] = partition['close'].rolling(10).mean()
    partition['volatility'] = partition['close'].rolling(20).std()
    partition['target'] = partition['close'].shift(-1)  # next day close
    return partition.dropna()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('partition_dir', help='output of `psfleet data partition CSV --out DIR`')
    ap.add_argument('--cutoff', required=True, help='first test date, YYYY-MM-DD')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=None, help='directory for nepse_model.json')
    a = ap.parse_args()
    out = a.out or a.partition_dir
    times = {'import': T_IMPORT - T0}

    t = time.perf_counter()
    # §85.8: client = Client(n_workers=4, threads_per_worker=2, memory_limit='4GB')
    client = Client(n_workers=a.workers, threads_per_worker=a.threads, memory_limit='4GB',
                    dashboard_address=None)
    times['start'] = time.perf_counter() - t

    # Step 1: read partitioned data (one partition per symbol=XYZ folder)
    t = time.perf_counter()
    df = dd.read_csv(os.path.join(a.partition_dir, 'symbol=*', 'data.csv'))
    df = df.persist()
    wait(df)
    times['read'] = time.perf_counter() - t

    # Step 2: feature engineering per symbol (using map_partitions)
    t = time.perf_counter()
    df_feat = df.map_partitions(engineer_features)
    df_feat = df_feat.persist()
    wait(df_feat)
    times['features'] = time.perf_counter() - t

    # Step 3: prepare data for training (train rows: before the cutoff)
    t = time.perf_counter()
    feature_cols = ['lag_1', 'lag_5', 'sma_10', 'volatility']
    train = df_feat[df_feat['date'] < a.cutoff]
    X = train[feature_cols]
    y = train['target']

    # Step 4: distributed training with XGBoost
    dtrain = xgb.dask.DaskDMatrix(client, X, y)
    params = {'objective': 'reg:squarederror', 'max_depth': 5, 'eta': 0.1}
    output = xgb.dask.train(client, params, dtrain, num_boost_round=100)
    model = output['booster']

    # Step 5: save model
    model.save_model(os.path.join(out, 'nepse_model.json'))
    times['train'] = time.perf_counter() - t

    # Step 6: distributed inference (the test rows are the new data)
    t = time.perf_counter()
    new_data = df_feat[df_feat['date'] >= a.cutoff]
    X_new = new_data[feature_cols]
    predictions = xgb.dask.predict(client, model, X_new).compute()
    y_new = new_data['target'].compute()
    times['predict'] = time.perf_counter() - t

    t = time.perf_counter()
    client.close()
    times['shutdown'] = time.perf_counter() - t

    pred = np.asarray(predictions, dtype=np.float64)
    truth = np.asarray(y_new, dtype=np.float64)
    if pred.shape != truth.shape or pred.size == 0:
        print('seed_dask: %d predictions for %d test rows' % (pred.size, truth.size),
              file=sys.stderr)
        return 1
    rmse = math.sqrt(float(np.mean((pred - truth) ** 2)))
    for k in ('import', 'start', 'read', 'features', 'train', 'predict', 'shutdown'):
        print('dask_%s_seconds %.3f s' % (k, times[k]))
    print('dask_total_seconds %.3f s' % (time.perf_counter() - T0))
    print('dask_test_rmse %.9g' % rmse)
    print('dask_test_n %d rows' % truth.size)
    return 0


if __name__ == '__main__':
    sys.exit(main())
