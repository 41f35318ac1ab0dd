"""A tournament's analysis and its reports: terminal leaderboard, one self-contained HTML page
(plots inlined), JSON and CSV exports. A tournament stopped before its first match ended has
nothing to rate: its terminal and HTML reports say so and how to resume it."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparring.arenas import metagame, ratings
from sparring.arenas.store import MatchRecord
from sparring.arenas.tournament import TournamentConfig
from sparring.runs import atomic_write_text


@dataclass
class Analysis:
    cfg: TournamentConfig
    matches: list[MatchRecord]
    agents: list[str]
    bradley_terry: dict[str, ratings.Rating]
    elo: dict[str, ratings.Rating]
    openskill: dict[str, tuple[float, float]]
    meta: metagame.MetaGame
    nash: np.ndarray
    nash_average: np.ndarray
    nash_skill: np.ndarray
    alpharank: np.ndarray
    elo_history: list[dict[str, float]]
    record: dict[str, dict[str, int]] = field(default_factory=dict)
    """Agent → wins, draws, losses, forfeits."""
    per_seat: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)
    """Agent → seat → (mean reward, matches)."""
    win_rates: dict[tuple[str, str], tuple[float, float, float, int]] = field(default_factory=dict)
    """(agent, opponent) → (score rate, 95% interval low, high, games); a draw scores ½."""

    def leaderboard(self) -> list[dict[str, Any]]:
        rows = []
        for k, a in enumerate(self.agents):
            bt, el = self.bradley_terry[a], self.elo[a]
            mu, sigma = self.openskill[a]
            rows.append({
                "agent": a, "bt": bt.value, "bt_lo": bt.lo, "bt_hi": bt.hi, "elo": el.value, "elo_lo": el.lo,
                "elo_hi": el.hi, "openskill_mu": mu, "openskill_sigma": sigma, "nash": float(self.nash[k]),
                "nash_average": float(self.nash_average[k]), "nash_skill": float(self.nash_skill[k]),
                "alpharank": float(self.alpharank[k]), **self.record[a],
            })
        return sorted(rows, key=lambda r: -r["bt"])


def analyse(cfg: TournamentConfig, matches: list[MatchRecord]) -> Analysis:
    agents = list(cfg.roster)
    games = ratings.games_from_matches(matches)
    meta = metagame.payoff_matrix(agents, matches)
    adv = meta.advantage
    mixture, skill = metagame.nash_averaging(adv)
    record = {a: {"wins": 0, "draws": 0, "losses": 0, "forfeits": 0} for a in agents}
    for g in games:
        for agent, score in ((g.a, g.score), (g.b, 1 - g.score)):
            record[agent]["wins" if score == 1 else "draws" if score == 0.5 else "losses"] += 1
    per_seat: dict[str, dict[str, list[float]]] = {a: {} for a in agents}
    for m in matches:
        if m.status == "forfeit":
            record[m.forfeit_by]["forfeits"] += 1
            continue
        for seat, agent in m.seats.items():
            per_seat[agent].setdefault(seat, []).append(m.rewards[seat])
    return Analysis(
        cfg=cfg, matches=matches, agents=agents,
        bradley_terry=ratings.with_intervals(ratings.bradley_terry, agents, games, cfg.bootstrap, cfg.seed),
        elo=ratings.with_intervals(ratings.elo, agents, games, cfg.bootstrap, cfg.seed, point_from_resamples=True),
        openskill=ratings.openskill(agents, games), meta=meta, nash=metagame.nash_lp(adv),
        nash_average=mixture, nash_skill=skill, alpharank=metagame.alpharank(meta.scores, cfg.alpharank_alpha),
        elo_history=ratings.elo_history(agents, games), record=record,
        per_seat={a: {s: (float(np.mean(v)), len(v)) for s, v in seats.items()} for a, seats in per_seat.items()},
        win_rates=ratings.win_rates(agents, games),
    )


def rating_rows(analysis: Analysis) -> list[tuple[str, str, float, float | None, float | None, int]]:
    """Rows for the store's ratings snapshot (none before the first finished match: the prior
    is no rating)."""
    if not analysis.matches:
        return []
    rows = []
    for a in analysis.agents:
        n = sum(analysis.record[a][k] for k in ("wins", "draws", "losses"))  # rated games (a forfeit is a loss)
        for system, r in (("bradley_terry", analysis.bradley_terry[a]), ("elo", analysis.elo[a])):
            rows.append((system, a, r.value, r.lo, r.hi, n))
        mu, sigma = analysis.openskill[a]
        rows.append(("openskill", a, mu, mu - 2 * sigma, mu + 2 * sigma, n))
    return rows


def no_matches_yet(cfg: TournamentConfig) -> str:
    """What a report says of a tournament stopped before its first match ended: every rating
    would be the prior, so it says how to play the matches instead."""
    return (f"{cfg.name} has no finished matches yet, so there is nothing to rate: play them with "
            f"`{cfg.resume_command}`")


def _interval(lo: float | None, hi: float | None, sep: str = "-") -> str:
    """A rating interval as text; ``-`` when there is none (no rated game yet: the matches
    stored so far are self-matches, which rate nobody)."""
    return "-" if lo is None or hi is None else f"{lo:.0f}{sep}{hi:.0f}"


def terminal_table(analysis: Analysis):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if not analysis.matches:
        return Text(no_matches_yet(analysis.cfg))
    played = len(analysis.matches)
    table = Table(title=f"{analysis.cfg.name}: {analysis.cfg.game['id']}, {played} matches", box=box.SIMPLE_HEAD,
                  pad_edge=False, caption="BT: Bradley-Terry (95% bootstrap interval); FF: forfeits")
    for column in ("agent", "BT", "BT 95%", "Elo", "Nash", "α-Rank", "W-D-L", "FF"):
        table.add_column(column, justify="left" if column == "agent" else "right", no_wrap=True)
    for row in analysis.leaderboard():
        table.add_row(row["agent"], f"{row['bt']:.0f}", _interval(row["bt_lo"], row["bt_hi"]),
                      f"{row['elo']:.0f}", f"{row['nash']:.2f}", f"{row['alpharank']:.2f}",
                      f"{row['wins']}-{row['draws']}-{row['losses']}", str(row["forfeits"]))
    return table


def to_json(analysis: Analysis) -> dict[str, Any]:
    return {
        "name": analysis.cfg.name, "game": analysis.cfg.game, "matches": len(analysis.matches),
        "leaderboard": analysis.leaderboard(), "agents": analysis.agents,
        "payoffs": [[None if np.isnan(v) else float(v) for v in row] for row in analysis.meta.payoffs],
        "scores": [[float(v) for v in row] for row in analysis.meta.scores],
        "per_seat": {a: {s: {"mean_reward": m, "matches": n} for s, (m, n) in seats.items()}
                     for a, seats in analysis.per_seat.items()},
        "forfeits": [{"match": m.key, "agent": m.forfeit_by, "reason": m.reason}
                     for m in analysis.matches if m.status == "forfeit"],
        "win_rates": [{"agent": a, "opponent": b, "rate": r, "lo": lo, "hi": hi, "games": n}
                      for (a, b), (r, lo, hi, n) in analysis.win_rates.items()],
    }


def write_reports(analysis: Analysis, directory: Path) -> dict[str, Path]:
    """report.html, report.json, leaderboard.csv and matches.csv in ``directory``."""
    paths = {"html": directory / "report.html", "json": directory / "report.json",
             "leaderboard": directory / "leaderboard.csv", "matches": directory / "matches.csv"}
    board = analysis.leaderboard()
    leaderboard = io.StringIO()
    writer = csv.DictWriter(leaderboard, fieldnames=list(board[0]))
    writer.writeheader()
    writer.writerows(board)
    matches = io.StringIO()
    rows = csv.writer(matches)
    rows.writerow(["match", "round", "seed", "seats", "status", "rewards", "forfeit_by", "reason"])
    for m in analysis.matches:
        rows.writerow([m.key, m.round, m.seed, json.dumps(m.seats), m.status, json.dumps(m.rewards),
                       m.forfeit_by or "", m.reason or ""])
    texts = {"html": html_report(analysis), "json": json.dumps(to_json(analysis), indent=1),
             "leaderboard": leaderboard.getvalue(), "matches": matches.getvalue()}
    for key, text in texts.items():  # each file whole or not at all: a kill never leaves half a report
        atomic_write_text(paths[key], text)
    return paths


# -- HTML ---------------------------------------------------------------------------------------
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _heatmap(analysis: Analysis) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(analysis.agents)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * n, 1.0 + 0.6 * n), dpi=100)
    values = analysis.meta.payoffs
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn")
    ax.set_xticks(range(n), analysis.agents, rotation=45, ha="right")
    ax.set_yticks(range(n), analysis.agents)
    ax.set_xlabel("opponent")
    ax.set_ylabel("agent (mean reward)")
    for i in range(n):
        for j in range(n):
            if not np.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def _rating_plot(analysis: Analysis) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for a in analysis.agents:
        ax.plot([h[a] for h in analysis.elo_history], label=a)
    ax.set_xlabel("rated matches (schedule order)")
    ax.set_ylabel("Elo")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:right}
th:nth-child(2),td:nth-child(2){text-align:left}.bar{display:inline-block;height:.7rem;background:#4a7}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6rem;font-size:.8rem}details{margin:.3rem 0}
"""

_CHECK = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var drawn = images.every(function (i) { return i.complete && i.naturalWidth > 0; });
  var rows = document.querySelectorAll('#leaderboard tbody tr').length;
  document.body.setAttribute('data-rendered', drawn && rows > 0 ? 'ok' : 'broken');
});
"""


def _win_rate_rows(analysis: Analysis) -> str:
    e = html.escape
    rows = []
    for a in analysis.agents:
        cells = []
        for b in analysis.agents:
            entry = analysis.win_rates.get((a, b))
            cells.append("<td>-</td>" if entry is None else f"<td>{entry[0]:.2f} [{entry[1]:.2f}, {entry[2]:.2f}]</td>")
        rows.append(f"<tr><td></td><td>{e(a)}</td>{''.join(cells)}</tr>")
    return "".join(rows)


def _empty_html(cfg: TournamentConfig) -> str:
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(cfg.name)} · sparring arena</title>
<style>{_STYLE}</style></head>
<body data-rendered="empty">
<h1>{e(cfg.name)}</h1>
<p>{e(cfg.game['id'])} · 0 matches</p>
<p id="no-matches">{e(no_matches_yet(cfg))}</p>
</body></html>
"""


def html_report(analysis: Analysis) -> str:
    e = html.escape
    cfg = analysis.cfg
    if not analysis.matches:
        return _empty_html(cfg)
    rows = []
    for rank, r in enumerate(analysis.leaderboard(), 1):
        rows.append(
            f"<tr><td>{rank}</td><td>{e(r['agent'])}</td><td>{r['bt']:.0f} [{_interval(r['bt_lo'], r['bt_hi'], ', ')}]</td>"
            f"<td>{r['elo']:.0f} [{_interval(r['elo_lo'], r['elo_hi'], ', ')}]</td>"
            f"<td>{r['openskill_mu']:.1f} ± {r['openskill_sigma']:.1f}</td>"
            f"<td><span class='bar' style='width:{60 * r['nash']:.0f}px'></span> {r['nash']:.2f}</td>"
            f"<td>{r['nash_average']:.2f} ({r['nash_skill']:+.2f})</td>"
            f"<td><span class='bar' style='width:{60 * r['alpharank']:.0f}px'></span> {r['alpharank']:.2f}</td>"
            f"<td>{r['wins']}-{r['draws']}-{r['losses']}</td><td>{r['forfeits']}</td></tr>")
    seats = sorted({s for per in analysis.per_seat.values() for s in per})
    seat_rows = "".join(
        f"<tr><td></td><td>{e(a)}</td>" + "".join(
            f"<td>{analysis.per_seat[a][s][0]:+.2f} ({analysis.per_seat[a][s][1]})</td>" if s in analysis.per_seat[a]
            else "<td>-</td>" for s in seats) + "</tr>"
        for a in analysis.agents)
    forfeits = "".join(f"<li>{e(m.key)}: <b>{e(m.forfeit_by or '')}</b> — {e(m.reason or '')}</li>"
                       for m in analysis.matches if m.status == "forfeit")
    samples: dict[tuple[str, ...], list[MatchRecord]] = {}
    for m in analysis.matches:
        bucket = samples.setdefault(tuple(m.seats.values()), [])
        if len(bucket) < cfg.transcripts_per_pairing:
            bucket.append(m)
    transcripts = "".join(
        f"<details><summary>{e(' vs '.join(f'{s}={a}' for s, a in m.seats.items()))} · seed {m.seed} · "
        f"{e(m.status)}</summary><pre>{e(m.transcript)}</pre></details>"
        for bucket in samples.values() for m in bucket)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(cfg.name)} · sparring arena</title>
<style>{_STYLE}</style></head>
<body data-rendered="pending">
<h1>{e(cfg.name)}</h1>
<p>{e(cfg.game['id'])} · {len(analysis.matches)} matches · {e(cfg.schedule)} · {cfg.games_per_pairing} seeds per pairing
{'· both seat orders' if cfg.role_swap else ''}</p>
<h2>Leaderboard</h2>
<table id="leaderboard"><thead><tr><th>#</th><th>agent</th><th>Bradley–Terry [95%]</th><th>Elo [95%]</th>
<th>OpenSkill μ ± σ</th><th>Nash (LP)</th><th>Nash average (skill)</th><th>α-Rank</th><th>W-D-L</th><th>forfeits</th>
</tr></thead><tbody>{''.join(rows)}</tbody></table>
<p>A match is won by the agent with the higher reward. Intervals: {cfg.bootstrap} bootstrap resamples of the
matches (Elo: their median and percentiles). Nash, Nash averaging and α-Rank (α = {cfg.alpharank_alpha:g}): the meta-game
of match scores (win 1, draw ½, loss 0; a forfeit is a loss), whose zero-sum form is each pair's score difference.
The heatmap shows mean rewards of completed matches.</p>
<h2>Payoffs</h2>
<img id="heatmap" alt="payoff heatmap" src="{_heatmap(analysis)}">
<h2>Win rates</h2>
<table id="win-rates"><thead><tr><th></th><th>agent</th>{''.join(f'<th>vs {e(b)}</th>' for b in analysis.agents)}</tr></thead>
<tbody>{_win_rate_rows(analysis)}</tbody></table>
<p>Share of games won against each opponent (a draw counts half), with 95% Wilson intervals.</p>
<h2>Ratings over matches</h2>
<img id="ratings-plot" alt="Elo over matches" src="{_rating_plot(analysis)}">
<h2>Per seat</h2>
<table id="per-seat"><thead><tr><th></th><th>agent</th>{''.join(f'<th>{e(s)}</th>' for s in seats)}</tr></thead>
<tbody>{seat_rows}</tbody></table>
<h2>Forfeits</h2><ul>{forfeits or '<li>none</li>'}</ul>
<h2>Transcripts</h2><p>Hidden reasoning is marked, not shown.</p>{transcripts}
<script>{_CHECK}</script>
</body></html>
"""
