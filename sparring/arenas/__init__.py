"""Tournaments: schedules, the results store, ratings, meta-game analysis, reports, the
evaluation of a red-teaming model against the scripted baselines, and the CPU demo."""
