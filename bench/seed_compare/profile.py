#!/usr/bin/python3
"""profile.py WORK SIDE -- where a `psfleet up --train-only` run of the seed spends its
wall time, from the node logs' timestamps (run.sh calls it).

Each stage ends when the LAST node passes the event that ends it, so the stages
follow the critical path and add up to the whole run (process start to exit):
  preflight   up's checks (config, ports, a full scan of the CSV) until ps0 logs
  start       the ps ready, the trainer processes started and configured
  plan        each trainer's shard plan: a scan of the whole CSV
  load        each trainer's load of its symbols (the whole file is read) + features
  register    registering with every ps
  solve       feature statistics and normal equations reduced, the system solved
  assign      trainer 0 assigns the weights
  evaluate    the barrier, then every test row predicted on the served weights
  stop        final reports, up stops the ps, process exit
Reads WORK/run_SIDE_N/logs, WORK/SIDE_N.t0 (start) and WORK/SIDE_N.out (wall)
of run.sh; prints `SIDE_stage_<name>_seconds median [min-max]`.
"""
import glob
import os
import re
import statistics
import sys
from datetime import datetime, timezone

EVENTS = [  # (stage, node glob, message regexp); the stage ends at the last match
    ('preflight', 'ps0', r' config: loaded '),
    ('start', 'trainer-*', r' config: loaded '),
    ('plan', 'trainer-*', r' trainer: owns '),
    ('load', 'trainer-*', r' trainer: loaded '),
    ('register', 'trainer-*', r' node: ready'),
    ('solve', 'trainer-*', r' exact solver: \d+ rows'),
    ('assign', 'trainer-*', r' exact solver: .* assigned as model version'),
    ('evaluate', 'trainer-*', r' exact solve: test rmse'),
]


def ts(line):
    t = datetime.strptime(line.split()[0], '%Y-%m-%dT%H:%M:%S.%fZ')
    return t.replace(tzinfo=timezone.utc).timestamp()


def last_match(logs, node_glob, pattern):
    best = None
    for path in glob.glob(os.path.join(logs, node_glob + '.log')):
        for line in open(path):
            if re.search(pattern, line):
                t = ts(line)
                best = t if best is None or t > best else best
    return best


def profile(work, side, rep):
    logs = os.path.join(work, 'run_%s_%d' % (side, rep), 'logs')
    t0 = float(open(os.path.join(work, '%s_%d.t0' % (side, rep))).read())
    wall = None
    for line in open(os.path.join(work, '%s_%d.out' % (side, rep))):
        if line.startswith(side + '_wall_seconds '):
            wall = float(line.split()[1])
    stages, prev = {}, t0
    for name, node, pattern in EVENTS:
        t = last_match(logs, node, pattern)
        if t is None:
            return None
        t = max(t, prev)  # trainer 0 may assign before another trainer logs its solve
        stages[name] = t - prev
        prev = t
    stages['stop'] = t0 + wall - prev
    return stages


def main():
    work, side = sys.argv[1], sys.argv[2]
    runs = []
    for p in sorted(glob.glob(os.path.join(work, side + '_*.t0'))):
        r = profile(work, side, int(re.search(r'_(\d+)\.t0$', p).group(1)))
        if r is not None:
            runs.append(r)
    if not runs:
        print('# profile: no complete %s run logs' % side, file=sys.stderr)
        return 1
    names = [e[0] for e in EVENTS] + ['stop']
    for n in names:
        v = [r[n] for r in runs]
        print('%s_stage_%s_seconds %.3f s  [%.3f-%.3f] over %d' %
              (side, n, statistics.median(v), min(v), max(v), len(v)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
