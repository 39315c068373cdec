"""Strategies: analyzers, filters, the per-strategy orchestrator, its factory and the manager."""
