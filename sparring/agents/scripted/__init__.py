"""Scripted baseline agents: fixed strategies that every game ships with."""
