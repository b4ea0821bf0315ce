"""Federated algorithms Flower lacks: each a Flower Strategy (server half) plus its client half."""
