"""Federated algorithms Flower lacks: each a Flower Strategy (server half) plus its client half.

``scaffold``, ``fednova``, ``feddyn``, ``fedbn`` and ``ditto``; the YAML options in
conf/strategy/ name them with ``_target_`` (e.g. ``strategies.scaffold.Scaffold``).
"""
