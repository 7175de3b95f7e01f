"""The fault suite: ``python -m faults`` (or ``nox -s faults``) runs real
engines on loopback through sustained faults and prints one summary line per
scenario with its figures; the run exits non-zero when any scenario misses.

Every scenario is bounded in time and in rounds, and every process it starts
(engines, their children, ``redis-server``) is gone when it ends: the runner
checks this process's descendants after each scenario, kills any it finds,
and counts them as a miss. ``--quick`` runs a short version of each.

It is a tool of the repository, not of the installed package: it imports
``engine`` and ``protocols`` and the fault job types of ``engine.testing``,
and nothing from ``tests``.
"""
