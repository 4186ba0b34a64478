"""The weight-sharing supernet over a search space, its static twins and supernet training pieces."""
