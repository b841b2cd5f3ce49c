"""A survey's emotion report: one self-contained HTML file (inline CSS, charts as base64 PNG).

It reads the warehouse views, so it shows the current model's labels (or the version asked
for) and says which version that is. Each emotion has one fixed colour everywhere
(:data:`EMOTION_COLORS`), so a chart can be read without hunting for its legend.

Beside every share it gives the count behind it, its 95% Wilson interval (from the views) and
the expected share (the mean of the model's probability over the same utterances), and it
marks the shares whose interval is wider than ±:data:`WIDE_HALF_WIDTH` (:func:`is_wide`): a
share of 14 utterances is mostly noise.

When the survey has transcripts (the ``transcripts`` table; none when SER_TRANSCRIBE=false)
the report also quotes what was said: each of the most emotional moments with its words, and
per question the :data:`NEGATIVE_QUOTES_PER_QUESTION` most negative answers (:func:`_negative_quotes`).
Without transcripts it shows neither, and no text at all. Every text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS

EMOTION_COLORS: dict[str, str] = {
    "neutral": "#9e9e9e",  # grey
    "calm": "#1aa39a",  # teal
    "happy": "#f5a623",  # yellow-orange
    "sad": "#2f6fd0",  # blue
    "angry": "#d62828",  # red
    "fearful": "#7b3fa8",  # purple
    "disgust": "#3a8f3a",  # green
    "surprised": "#e377c2",  # pink
}

MAX_SESSION_ARCS = 12

NEGATIVE_QUOTES_PER_QUESTION = 3
"""How many of each question's most negative answers the report quotes."""

WIDE_HALF_WIDTH = 0.15
"""A share is marked when half its 95% interval's width exceeds this (±15 points)."""

WIDE_NOTE = ("Each cell: the share of labels, how many utterances of how many, the 95% interval and the expected share "
             "(exp.: the mean of the model's probability, less biased when it is unsure). "
             "<span class=\"wide-key\">† interval wider than ±15 points: few utterances, a rough indication only.</span>")

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #23395b; color: white; padding: 24px 40px; }
header h1 { margin: 0 0 6px 0; font-size: 26px; }
header p { margin: 0; opacity: 0.85; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 40px 60px; }
section { background: white; border-radius: 8px; padding: 18px 24px; margin: 18px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 19px; margin: 0 0 6px 0; color: #23395b; }
p.note { color: #555; margin: 4px 0 12px 0; font-size: 14px; }
img { max-width: 100%; display: block; margin: 0 auto; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e6ea; }
th { background: #f0f2f5; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; }
.kpi { flex: 1; min-width: 150px; background: #f0f4fa; border-radius: 6px; padding: 10px 14px; }
.kpi b { display: block; font-size: 22px; color: #23395b; }
.legend span { display: inline-block; margin: 0 14px 4px 0; font-size: 14px; }
.legend i { display: inline-block; width: 14px; height: 14px; border-radius: 3px; margin-right: 5px; vertical-align: -2px; }
table.shares { margin-top: 12px; font-size: 12px; }
table.shares td, table.shares th { vertical-align: top; white-space: nowrap; }
td.share .count, td.share .ci, td.share .exp, .kpi small { color: #666; }
.share.wide, .wide-key { background: #fff1dc; color: #8a5a00; }
.share.wide b { color: #8a5a00; font-style: italic; }
.kpi small { display: block; font-size: 12px; margin-top: 2px; }
.quote-groups { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 6px 22px; }
.quote-group h3 { font-size: 15px; margin: 10px 0 6px 0; color: #23395b; }
blockquote.quote { margin: 0 0 10px 0; padding: 8px 12px; background: #fbf6ec; border-left: 5px solid #999; border-radius: 0 5px 5px 0; }
blockquote.quote p { margin: 0 0 5px 0; font-size: 15px; line-height: 1.35; }
blockquote.quote footer { font-size: 12px; color: #666; line-height: 1.5; }
.chip { display: inline-block; padding: 0 6px; border-radius: 3px; color: white; font-size: 11px; font-weight: 600; }
td.quote { white-space: normal; min-width: 260px; max-width: 520px; background: #fbf6ec; }
td.quote.empty, p.none { color: #888; font-style: italic; }
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)  # constrained layout: one draw pass, unlike bbox_inches="tight"
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _ordered(labels) -> list[str]:
    present = set(labels)
    return [e for e in EMOTIONS if e in present]


def is_wide(low: float, high: float) -> bool:
    """Whether a share's interval [low, high] is wider than ±WIDE_HALF_WIDTH."""
    return (high - low) / 2 > WIDE_HALF_WIDTH


def _percent(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.0%}"


def _share_title(k: int, n: int, low: float, high: float, expected: float | None) -> str:
    shown = "–" if expected is None or pd.isna(expected) else f"{expected:.1%}"
    return f"{k} of {n} utterances; 95% interval {low:.1%} to {high:.1%}; expected share (mean probability) {shown}"


def _share_cell(key: str, k: int, n: int, share: float, low: float, high: float, expected: float | None) -> str:
    """One share as HTML: share, k/n, 95% interval, expected share; class ``wide`` and a † when
    the interval is wider than ±15 points. ``data-share`` names it (table|group|label)."""
    wide = is_wide(low, high)
    title = _share_title(k, n, low, high, expected)
    return (f'<td class="share{" wide" if wide else ""}" data-share="{html.escape(key)}" title="{html.escape(title)}">'
            f'<b>{share:.0%}</b>{" †" if wide else ""} <span class="count">{k}/{n}</span><br>'
            f'<span class="ci">{100 * low:.0f}–{100 * high:.0f}%</span> <span class="exp">exp. {_percent(expected)}</span></td>')


def _share_grid(frame: pd.DataFrame, head: str, extra: tuple[str, dict[str, str]] | None = None) -> str:
    """A table of shares: a row per group (``key``, shown as ``row``, in the frame's order) with
    its utterance count (``total``), a column per emotion present; ``extra`` is one more column
    (its title and a cell per key)."""
    emotions = _ordered(frame["label"])
    titles = [head, "utterances", *emotions] + ([extra[0]] if extra else [])
    head_html = "".join(f"<th>{html.escape(t)}</th>" for t in titles)
    rows = []
    for key, group in frame.groupby("key", sort=False):
        by_label = {r.label: r for r in group.itertuples(index=False)}
        n = int(group["total"].iloc[0])
        cells = [f"<th>{html.escape(str(group['row'].iloc[0]))}</th>", f"<td>{n}</td>"]
        for emotion in emotions:
            r = by_label.get(emotion)
            cells.append('<td class="none">–</td>' if r is None else
                         _share_cell(f"{key}|{emotion}", int(r.n_utterances), n, r.share, r.share_low, r.share_high, r.expected_share))
        if extra:
            cells.append(extra[1].get(key, '<td class="none">–</td>'))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="shares"><thead><tr>{head_html}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="note">{WIDE_NOTE}</p>')


def _weekly_shares(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    share = con.execute(
        "SELECT week, label, n_utterances, week_utterances AS total, share, share_low, share_high, expected_share "
        "FROM v_emotion_share_weekly WHERE survey_id = $s ORDER BY week", {"s": con.survey}).df()
    trend = con.execute(
        "SELECT week, n_utterances, n_negative, negative_share, negative_share_low, negative_share_high, expected_negative_share "
        "FROM v_negative_trend WHERE survey_id = $s ORDER BY week", {"s": con.survey}).df()
    for frame in (share, trend):
        frame["key"] = [f"week|{pd.Timestamp(w):%Y-%m-%d}" for w in frame["week"]]
        frame["row"] = [f"{pd.Timestamp(w):%d %b %Y}" for w in frame["week"]]
    return share, trend


def _weekly_table(share: pd.DataFrame, trend: pd.DataFrame) -> str | None:
    if share.empty:
        return None
    negative = {r.key: _share_cell(f"{r.key}|negative", int(r.n_negative), int(r.n_utterances), r.negative_share,
                                   r.negative_share_low, r.negative_share_high, r.expected_negative_share)
                for r in trend.itertuples(index=False)}
    return _share_grid(share, "week starting", ("negative", negative))


def _segment_shares(con) -> pd.DataFrame:
    seg = con.execute(
        "SELECT attribute, value, label, n_utterances, group_utterances AS total, share, share_low, share_high, expected_share "
        "FROM v_emotion_share_by_segment WHERE survey_id = $s", {"s": con.survey}).df()
    order = {a: i for i, a in enumerate(("age_band", "gender", "market", "segment"))}
    seg = seg.sort_values(["attribute", "value"], key=lambda c: c.map(order) if c.name == "attribute" else c.astype(str))
    seg["key"] = "segment|" + seg["attribute"] + "=" + seg["value"].astype(str)
    seg["row"] = seg["attribute"].str.replace("_", " ") + ": " + seg["value"].astype(str)
    return seg


def _question_shares(con) -> pd.DataFrame:
    share = con.execute(
        "SELECT question, label, n_utterances, question_utterances AS total, share, share_low, share_high, expected_share "
        "FROM v_emotion_share_by_question WHERE survey_id = $s ORDER BY question", {"s": con.survey}).df()
    share["key"] = "question|" + share["question"].astype(str)
    share["row"] = share["question"]
    return share


def _sessions_table(arcs: pd.DataFrame) -> str | None:
    """Each session's negative share (the arc's last running share) with its count and interval."""
    if arcs.empty:
        return None
    last = arcs.groupby("session_id", sort=False).tail(1)
    rows = "".join(
        f"<tr><th>{html.escape(str(r.session_id))}</th><td>{pd.Timestamp(r.recorded_at):%Y-%m-%d %H:%M}</td><td>{int(r.n_utterances_so_far)}</td>"
        + _share_cell(f"session|{r.session_id}|negative", int(r.n_negative_so_far), int(r.n_utterances_so_far), r.running_negative_share,
                      r.running_negative_share_low, r.running_negative_share_high, r.expected_running_negative_share)
        + "</tr>"
        for r in last.itertuples(index=False)
    )
    return ('<table class="shares"><thead><tr><th>session</th><th>recorded</th><th>utterances</th><th>negative</th></tr></thead>'
            f'<tbody>{rows}</tbody></table><p class="note">{WIDE_NOTE}</p>')


def _share_over_time(share: pd.DataFrame, trend: pd.DataFrame) -> str | None:
    import matplotlib.pyplot as plt

    if share.empty:
        return None
    wide = share.pivot_table(index="week", columns="label", values="share", fill_value=0.0)
    wide = wide[_ordered(wide.columns)]
    weeks = [pd.Timestamp(w).strftime("%d %b %Y") for w in wide.index]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 6.5), height_ratios=[3, 1.3], sharex=True, layout="constrained")
    bottom = pd.Series(0.0, index=wide.index)
    for emotion in wide.columns:
        ax.bar(weeks, wide[emotion], bottom=bottom, color=EMOTION_COLORS[emotion], label=emotion, width=0.7)
        bottom += wide[emotion]
    ax.set_ylabel("share of utterances")
    ax.set_ylim(0, 1)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # top to bottom as stacked
    ax.set_title("Emotion share per week")
    trend_weeks = list(trend["row"])
    angry = EMOTION_COLORS["angry"]
    ax2.fill_between(trend_weeks, trend["negative_share_low"], trend["negative_share_high"], color=angry, alpha=0.15, linewidth=0,
                     label="95% interval")
    ax2.plot(trend_weeks, trend["negative_share"], marker="o", color=angry, label="share of labels")
    wide = [is_wide(lo, hi) for lo, hi in zip(trend["negative_share_low"], trend["negative_share_high"])]
    if any(wide):
        ax2.scatter([w for w, x in zip(trend_weeks, wide) if x], trend.loc[wide, "negative_share"], s=60, facecolors="white",
                    edgecolors=angry, linewidths=1.5, zorder=4, label="interval wider than ±15 points")
    ax2.plot(trend_weeks, trend["expected_negative_share"], linestyle="--", color="#555", label="expected (mean probability)")
    ax2.set_ylabel("negative share")
    ax2.set_ylim(0, min(1.0, max(0.05, float(trend["negative_share_high"].max()) * 1.1)))
    ax2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9)
    ax2.set_xlabel("week starting")
    ax2.grid(alpha=0.3)
    return _png(fig)


def _segments(seg: pd.DataFrame) -> str | None:
    import matplotlib.pyplot as plt

    if seg.empty:
        return None
    attributes = [a for a in ("age_band", "gender", "market", "segment") if a in set(seg["attribute"])]
    fig, axes = plt.subplots(1, len(attributes), figsize=(12, 3.8), squeeze=False, layout="constrained")
    for ax, attribute in zip(axes[0], attributes):
        wide = seg[seg["attribute"] == attribute].pivot_table(index="value", columns="label", values="share", fill_value=0.0)
        wide = wide[_ordered(wide.columns)].sort_index(ascending=False)
        left = pd.Series(0.0, index=wide.index)
        for emotion in wide.columns:
            ax.barh(wide.index.astype(str), wide[emotion], left=left, color=EMOTION_COLORS[emotion], height=0.7)
            left += wide[emotion]
        ax.set_xlim(0, 1)
        ax.set_title(attribute.replace("_", " "))
        ax.set_xlabel("share")
    fig.suptitle("Emotion share by participant segment")
    return _png(fig)


def _questions(share: pd.DataFrame) -> str | None:
    import matplotlib.pyplot as plt

    if share.empty:
        return None
    wide = share.pivot_table(index="question", columns="label", values="share", fill_value=0.0)
    wide = wide[_ordered(wide.columns)].sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(wide) + 1.4), layout="constrained")
    left = pd.Series(0.0, index=wide.index)
    for emotion in wide.columns:
        ax.barh(wide.index.astype(str), wide[emotion], left=left, color=EMOTION_COLORS[emotion], height=0.7, label=emotion)
        left += wide[emotion]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the answers' utterances")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(fig)


def _arcs(con) -> pd.DataFrame:
    return con.execute(
        "SELECT a.session_id, s.recorded_at, a.utterance_index, a.start_s, a.label, a.negative_probability, a.n_utterances_so_far, "
        "a.n_negative_so_far, a.running_negative_share, a.running_negative_share_low, a.running_negative_share_high, "
        "a.expected_running_negative_share "
        "FROM v_session_arc a JOIN sessions s USING (session_id) WHERE a.survey_id = $s ORDER BY s.recorded_at, a.session_id, a.utterance_index",
        {"s": con.survey},
    ).df()


def _session_arcs(arcs: pd.DataFrame) -> tuple[str | None, int]:
    import matplotlib.pyplot as plt

    if arcs.empty:
        return None, 0
    sessions = list(dict.fromkeys(arcs["session_id"]))
    shown = sessions[:MAX_SESSION_ARCS]
    cols = 3 if len(shown) > 4 else 2 if len(shown) > 1 else 1
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.8 * rows), squeeze=False, sharey=True, layout="constrained")
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, session in zip(axes.flat, shown):
        one = arcs[arcs["session_id"] == session]
        minutes = one["start_s"] / 60.0
        ax.fill_between(minutes, one["running_negative_share_low"], one["running_negative_share_high"], color="#444", alpha=0.12, linewidth=0)
        ax.plot(minutes, one["running_negative_share"], color="#444", linewidth=1.4, label="running negative share")
        ax.scatter(minutes, one["negative_probability"], c=[EMOTION_COLORS[l] for l in one["label"]], s=26, zorder=3, edgecolors="white", linewidths=0.4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{session} ({pd.Timestamp(one['recorded_at'].iloc[0]).strftime('%d %b')})", fontsize=10)
        ax.set_xlabel("minutes into session", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("P(negative)", fontsize=9)
    return _png(fig), len(sessions)


def _confidence(con) -> str | None:
    import matplotlib.pyplot as plt
    import numpy as np

    conf = con.execute("SELECT label, confidence FROM v_labelled WHERE survey_id = $s", {"s": con.survey}).df()
    if conf.empty:
        return None
    bins = np.linspace(0, 1, 21)
    labels = _ordered(conf["label"])
    fig, ax = plt.subplots(figsize=(12, 3.8), layout="constrained")
    ax.hist([conf.loc[conf["label"] == l, "confidence"] for l in labels], bins=bins, stacked=True,
            color=[EMOTION_COLORS[l] for l in labels], label=labels)
    ax.axvline(0.5, color="#333", linestyle="--", linewidth=1)
    ax.text(0.505, ax.get_ylim()[1] * 0.92, "review threshold", fontsize=9)
    ax.set_xlabel("model confidence (probability of the predicted emotion)")
    ax.set_ylabel("utterances")
    ax.set_xlim(0, 1)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Confidence distribution")
    return _png(fig)


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else f'{v:.3f}' if isinstance(v, float) else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _has_transcripts(con) -> bool:
    """Whether any utterance of the survey has a transcript (False on a warehouse without the table)."""
    if not con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_quotes'").fetchone()[0]:
        return False
    return con.execute("SELECT EXISTS (SELECT 1 FROM v_transcripts t JOIN v_utterances u USING (utterance_id) "
                       "WHERE u.survey_id = $s)", {"s": con.survey}).fetchone()[0]


def _coverage(con) -> dict[str, Any]:
    """How many of the survey's utterances have words, were empty (and why), or were not transcribed."""
    n, words, empty, missing, models = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT t.is_empty), count(*) FILTER (WHERE t.is_empty), "
        "count(*) FILTER (WHERE t.utterance_id IS NULL), string_agg(DISTINCT t.transcript_model, ', ' ORDER BY t.transcript_model) "
        "FROM v_utterances u LEFT JOIN v_transcripts t USING (utterance_id) WHERE u.survey_id = $s", {"s": con.survey}).fetchone()
    reasons = con.execute(
        "SELECT t.empty_reason, count(*) AS n FROM v_utterances u JOIN v_transcripts t USING (utterance_id) "
        "WHERE u.survey_id = $s AND t.is_empty GROUP BY ALL ORDER BY n DESC, t.empty_reason", {"s": con.survey}).fetchall()
    return {"utterances": n, "words": words, "empty": empty, "missing": missing, "models": models or "", "reasons": reasons}


def _coverage_note(c: dict[str, Any]) -> str:
    reasons = ", ".join(f"{html.escape(str(r))}: {k}" for r, k in c["reasons"])
    return (f"{c['words']} of {c['utterances']} utterances have a transcript with words (by {html.escape(c['models'])}); "
            f"{c['empty']} {'was' if c['empty'] == 1 else 'were'} transcribed empty{f' ({reasons})' if reasons else ''} "
            f"and {c['missing']} not transcribed: neither is ever quoted. "
            "[EMAIL], [PHONE], [URL] and [CARD] stand where the text was redacted before it was stored.")


def _negative_quotes(con) -> pd.DataFrame:
    """Each question's most negative answers: among those labelled negative (labels.NEGATIVE_EMOTIONS)
    and transcribed with words, the highest P(negative) (the sum of the four negative
    emotions' probabilities, so an answer torn between sad and angry ranks above a hesitant
    angry one), then the highest confidence; at most NEGATIVE_QUOTES_PER_QUESTION each."""
    return con.execute(
        "SELECT question, session_id, utterance_index, spoken_at, start_s, end_s, segment, age_band, gender, label, confidence, "
        "negative_probability, text "
        "FROM v_quotes WHERE survey_id = $s AND question IS NOT NULL AND is_negative AND NOT is_empty "
        "QUALIFY row_number() OVER (PARTITION BY question ORDER BY negative_probability DESC NULLS LAST, confidence DESC, utterance_id) <= $k "
        "ORDER BY question, negative_probability DESC NULLS LAST, confidence DESC, utterance_id",
        {"s": con.survey, "k": NEGATIVE_QUOTES_PER_QUESTION}).df()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _chip(label: str) -> str:
    return f'<span class="chip" style="background:{EMOTION_COLORS.get(label, "#666")}">{html.escape(label)}</span>'


def _quote_block(r) -> str:
    who = ", ".join(html.escape(str(v)) for v in (r.segment, r.age_band, r.gender) if v is not None and not pd.isna(v))
    facts = [
        _chip(r.label),
        f"P(negative) {_percent(r.negative_probability)}" if not pd.isna(r.negative_probability) else None,
        f"confidence {_percent(r.confidence)}",
        who or None,
        f"session {html.escape(str(r.session_id))} at {_clock(r.start_s)}, {pd.Timestamp(r.spoken_at):%d %b %Y}",
    ]
    return (f'<blockquote class="quote" style="border-left-color:{EMOTION_COLORS.get(r.label, "#999")}">'
            f'<p>“{html.escape(r.text)}”</p><footer>{facts[0]} {" · ".join(f for f in facts[1:] if f)}</footer></blockquote>')


def _negative_quotes_html(quotes: pd.DataFrame, questions: list[str]) -> str:
    if not questions:
        return '<p class="note none">No labelled utterance of this survey names the question it answers.</p>'
    groups = []
    for question in questions:
        rows = quotes[quotes["question"] == question]
        body = ("".join(_quote_block(r) for r in rows.itertuples(index=False)) if not rows.empty
                else '<p class="note none">No negative answer to this question was transcribed.</p>')
        groups.append(f'<div class="quote-group" data-question="{html.escape(question)}"><h3>{html.escape(question)}</h3>{body}</div>')
    return f'<div class="quote-groups">{"".join(groups)}</div>'


def _moments_table(moments: pd.DataFrame, quotes: bool) -> str:
    """The most emotional moments; with ``quotes``, each one's words (or why there are none)."""
    columns = ["rank", "session_id", "utterance", "question", "label", "confidence", "start_s", "end_s"]
    head = "".join(f"<th>{c}</th>" for c in columns + (["what was said"] if quotes else []))
    rows = []
    for r in moments.itertuples(index=False):
        cells = [f"<td>{_chip(v) if c == 'label' else html.escape('' if pd.isna(v) else f'{v:.3f}' if isinstance(v, float) else str(v))}</td>"
                 for c, v in ((c, getattr(r, c)) for c in columns)]
        if quotes:
            if r.text is None or pd.isna(r.text):
                cells.append('<td class="quote empty">not transcribed</td>')
            elif r.empty_reason is not None and not pd.isna(r.empty_reason):
                cells.append(f'<td class="quote empty">nothing to quote ({html.escape(str(r.empty_reason))})</td>')
            else:
                cells.append(f'<td class="quote">“{html.escape(r.text)}”</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="moments"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


class _SurveyConnection:
    """The connection plus the survey id, so the chart helpers take one argument."""

    def __init__(self, con: duckdb.DuckDBPyConnection, survey: str):
        self._con, self.survey = con, survey

    def execute(self, sql: str, params: Any = None):
        return self._con.execute(sql, params)


def write_survey_report(con: duckdb.DuckDBPyConnection, survey_id: str, out_dir: str | Path, model_version: str | None = None) -> Path:
    """Write ``<out_dir>/<survey_id>.html`` and return its path.

    ``model_version`` reports that version's labels instead of the current model's.
    Raises KeyError when the survey is not in the warehouse.
    """
    import matplotlib

    matplotlib.use("Agg")
    if not con.execute("SELECT 1 FROM surveys WHERE survey_id = ?", [survey_id]).fetchall():
        known = [r[0] for r in con.execute("SELECT survey_id FROM surveys ORDER BY 1").fetchall()]
        raise KeyError(f"survey {survey_id!r} is not in the warehouse; surveys: {known}")
    if model_version is not None:
        con.execute("SET VARIABLE ser_model_version = ?", [model_version])
    try:
        sc = _SurveyConnection(con, survey_id)
        model = con.execute(
            "SELECT c.model_version, c.chosen_by, m.created_at, m.promoted_at, CAST(m.metrics AS VARCHAR) "
            "FROM v_current_model c LEFT JOIN model_versions m USING (model_version)"
        ).fetchone()
        kpi = con.execute(
            "SELECT count(DISTINCT s.session_id), min(s.recorded_at), max(s.recorded_at), "
            "(SELECT count(*) FROM v_utterances WHERE survey_id = $s), "
            "(SELECT count(*) FROM v_labelled WHERE survey_id = $s AND confidence < 0.5) "
            "FROM sessions s WHERE s.survey_id = $s",
            {"s": survey_id},
        ).fetchone()
        n_sessions, first, last, n_utterances, n_low = kpi
        n_labelled, n_negative, negative_low, negative_high, expected_negative = con.execute(
            "SELECT count(*) AS n, count(*) FILTER (WHERE is_negative) AS k, wilson_low(k, n), wilson_high(k, n), avg(negative_probability) "
            "FROM v_labelled WHERE survey_id = $s",
            {"s": survey_id},
        ).fetchone()
        weekly, trend = _weekly_shares(sc)
        segments, questions, arc_rows = _segment_shares(sc), _question_shares(sc), _arcs(sc)
        charts = {
            "time": _share_over_time(weekly, trend),
            "segments": _segments(segments),
            "questions": _questions(questions),
            "confidence": _confidence(sc),
        }
        tables = {
            "time": _weekly_table(weekly, trend),
            "segments": _share_grid(segments, "participants") if not segments.empty else None,
            "questions": _share_grid(questions, "question") if not questions.empty else None,
            "sessions": _sessions_table(arc_rows),
        }
        arcs, n_arc_sessions = _session_arcs(arc_rows)
        quotes = _has_transcripts(sc)
        moments = con.execute(
            "SELECT m.rank, m.session_id, m.utterance_index AS utterance, m.question, m.label, m.confidence, m.start_s, m.end_s"
            + (", t.text, t.empty_reason FROM v_emotional_moments m LEFT JOIN v_transcripts t USING (utterance_id)" if quotes
               else " FROM v_emotional_moments m")
            + " WHERE m.survey_id = $s AND m.rank <= 10 ORDER BY m.rank",
            {"s": survey_id},
        ).df()
        coverage = _coverage(sc) if quotes else None
        negative_quotes = _negative_quotes(sc) if quotes else None
        versions = con.execute(
            "SELECT model_version, created_at, promoted_at, count(p.utterance_id) AS predictions "
            "FROM model_versions m LEFT JOIN predictions p USING (model_version) GROUP BY ALL ORDER BY created_at"
        ).df()
    finally:
        if model_version is not None:
            con.execute("RESET VARIABLE ser_model_version")

    def section(title: str, note: str, body: str | None) -> str:
        content = body if body else '<p class="note"><em>No labelled utterances for this survey yet.</em></p>'
        return f"<section><h2>{html.escape(title)}</h2><p class=\"note\">{note}</p>{content}</section>"

    legend = "".join(f'<span><i style="background:{EMOTION_COLORS[e]}"></i>{e}</span>' for e in EMOTIONS)
    model_line = (
        f"Labels from model <b>{html.escape(model[0])}</b> ({html.escape(model[1])}"
        + (f", created {model[2]:%Y-%m-%d}" if model[2] else "")
        + (f", promoted {model[3]:%Y-%m-%d}" if model[3] else "")
        + ")"
        if model else "No model version recorded yet."
    )
    when = f"{first:%d %b %Y} – {last:%d %b %Y}" if first else "no sessions"
    negatives = ", ".join(sorted(NEGATIVE_EMOTIONS))
    if n_labelled:
        wide = is_wide(negative_low, negative_high)
        negative_kpi = (
            f'<div class="kpi share{" wide" if wide else ""}" data-share="{html.escape(f"survey|{survey_id}|negative")}" '
            f'title="{html.escape(_share_title(n_negative, n_labelled, negative_low, negative_high, expected_negative))}">'
            f'<b>{n_negative / n_labelled:.0%}{" †" if wide else ""}</b>negative ({negatives})'
            f'<small>{n_negative}/{n_labelled} · 95% {100 * negative_low:.0f}–{100 * negative_high:.0f}% · exp. {_percent(expected_negative)}</small></div>'
        )
    else:
        negative_kpi = f'<div class="kpi"><b>–</b>negative ({negatives})</div>'

    def with_table(chart: str | None, table: str | None) -> str | None:
        return (chart or "") + (table or "") or None

    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Emotion report: {html.escape(survey_id)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Emotion report: survey {html.escape(survey_id)}</h1><p>{when} · {model_line}</p></header><main>",
        "<section><div class=\"kpis\">"
        f"<div class=\"kpi\"><b>{n_sessions}</b>sessions</div>"
        f"<div class=\"kpi\"><b>{n_utterances}</b>utterances</div>"
        f"<div class=\"kpi\"><b>{n_labelled}</b>labelled by this model</div>"
        + negative_kpi +
        f"<div class=\"kpi\"><b>{n_low}</b>low-confidence (&lt; 0.5)</div>"
        f"</div><p class=\"legend\" style=\"margin-top:14px\">{legend}</p></section>",
        section("Emotion share over time",
                "Share of each emotion among the week's utterances; below, the share of negative emotions with its 95% interval "
                "(shaded) and the expected share from the probabilities (dashed).",
                with_table(charts["time"] and _img(charts["time"], "emotion share per week"), tables["time"])),
        section("Segments compared", "Share of each emotion among utterances by participants of each segment attribute.",
                with_table(charts["segments"] and _img(charts["segments"], "emotion share by segment"), tables["segments"])),
        section("Questions and topics", "Share of each emotion among the utterances answering each question (when the manifest names it).",
                with_table(charts["questions"] and _img(charts["questions"], "emotion share by question"), tables["questions"])),
        *([section("What was said: the most negative answers per question",
                   f"For each question, the {NEGATIVE_QUOTES_PER_QUESTION} answers labelled negative ({negatives}) that the model "
                   "found most negative: the highest P(negative), the sum of the negative emotions' probabilities, then the "
                   "highest confidence. " + _coverage_note(coverage),
                   _negative_quotes_html(negative_quotes, sorted(set(questions["question"]))))]
          if quotes else []),
        section("Session arcs",
                "Each dot is an utterance, coloured by its emotion, placed at the model's probability that it is negative; "
                "the line is the running share of negative utterances, shaded by its 95% interval; below, each session's negative share."
                + (f" First {MAX_SESSION_ARCS} of {n_arc_sessions} sessions charted." if n_arc_sessions > MAX_SESSION_ARCS else ""),
                with_table(arcs and _img(arcs, "session arcs"), tables["sessions"])),
        section("Confidence", "How sure the model was; utterances left of the dashed line go to the review queue.",
                charts["confidence"] and _img(charts["confidence"], "confidence distribution")),
        section("Most emotional moments",
                "The clearest non-neutral utterances (for a clip reel)" + (", with what was said." if quotes else "."),
                _moments_table(moments, quotes) if not moments.empty else None),
        section("Model versions", "Every version in the warehouse; the report uses the one named at the top.", _table(versions)),
        f"<p class=\"note\">Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by ser-pipeline. "
        "Participants appear only under keyed pseudonyms.</p>",
        "</main></body></html>",
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{survey_id}.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
