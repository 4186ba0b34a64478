"""Evolutionary searchers over subnet configs (deap); they see subnets only as ``SubnetConfig``."""
