"""Strategies on worker processes over NATS JetStream: the hub's and workers' side of the cluster.

Imported only when a config has a `cluster` section (or a command names a cluster): nothing here
is loaded by the single-process daemon or replay. Only the modules a cluster command runs import nats
(`bot --help` and the other commands import none: bot/cluster_args.py is outside this package).
"""
