"""A metric's history for get_metric_history.py: load a series (whole, or the server's even
sample with its extremes refined), summarise it honestly (exact figures, or a sample's labelled
as such), shape it into a View, and draw it (--plot)."""
