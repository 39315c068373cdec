"""`bot sweep`: one strategy replayed over a grid of parameter values, the variants ranked by a report figure."""
