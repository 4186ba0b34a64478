"""Recipes: the workflows users run (train, search, export, demo), each a class with setup / run / cleanup."""
