"""Evals: hand-labelled fixtures → the real pipeline → scorers → metrics → a logged report."""
