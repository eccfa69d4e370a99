"""`lmpipe report RUN --html FILE`: one self-contained page per run (issue 32).

The funnel as a chart and a table, per stage and drop reason the sampled documents (the stage's
`examples.json`: URL, id, the rule's detail, the first characters) and a sample of what it kept,
the corpus's document-length and language-score histograms, token counts, the corpus card, the
pretraining loss curve and the evaluation's task scores. Charts are inline SVG (matplotlib); the
page loads nothing from elsewhere.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from flows.report import clean_steps, model_lines, stage_rows, token_lines
from pipeline.core.card import corpus_of, render_card
from pipeline.core.examples import read_examples
from pipeline.core.layout import RunLayout
from pipeline.core.stage import list_shards, read_manifest
from pipeline.stages import DATA_STAGES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; text-align: left; }
td.n { text-align: right; }
td.preview { font-family: monospace; white-space: pre-wrap; max-width: 520px; font-size: 0.85em; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
pre.card { background: #f6f6f6; padding: 1em; white-space: pre-wrap; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and doctype are not HTML


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def funnel_chart(rows: list[dict]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.6 * len(rows)))
    names = [r["stage"] for r in rows][::-1]
    ax.barh(names, [r["in"] for r in rows][::-1], color="#ddd", label="records in")
    ax.barh(names, [r["out"] for r in rows][::-1], color="#4a7", label="documents out")
    ax.set_xlabel("records")
    ax.legend(loc="lower right")
    return _svg(fig)


def histogram(values: list[float], xlabel: str, bins: int = 40) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(values, bins=bins, color="#48a")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    return _svg(fig)


def corpus_columns(stage_dir: Path) -> dict[str, list[float]]:
    """Per document of the corpus: its length in characters (`chars`) and every score column
    (`language_score`; a quality classifier's `*_score` column as well, when a stage adds one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, list[float]] = {"chars": []}
    for path in list_shards(stage_dir):
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        except (OSError, pa.ArrowException):
            continue
        if "text" in table.column_names:
            out["chars"] += pc.utf8_length(table["text"]).to_pylist()
        for field in table.schema:
            if field.name.endswith("score") and pa.types.is_floating(field.type):
                out.setdefault(field.name, []).extend(table[field.name].to_pylist())
    return {k: [v for v in vs if v is not None] for k, vs in out.items()}


def loss_chart(pretrain_dir: Path) -> str:
    path = Path(pretrain_dir) / "metrics.jsonl"
    if not path.is_file():
        return ""
    train, val = {}, {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        (val if "val_loss" in row else train)[row["step"]] = row
    if not train:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    t = [train[k] for k in sorted(train)]
    ax.plot([r.get("tokens", r["step"]) for r in t], [r["loss"] for r in t], label="train loss")
    v = [val[k] for k in sorted(val)]
    if v:
        ax.plot([r.get("tokens", r["step"]) for r in v], [r["val_loss"] for r in v], "o-",
                label="val loss")  # fmt: skip
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("loss")
    ax.legend()
    return _svg(fig)


def _examples_table(stage: str, reason: str, items: list[dict], kept: bool = False) -> str:
    kind = "kept" if kept else "rejected"
    head = (
        "<tr><th>url</th><th>id</th><th>measured / detail</th><th>chars</th>"
        "<th>first characters</th></tr>"
    )
    rows = [
        f"<tr class='example'><td class='url'>{_e(x.get('url'))}</td>"
        f"<td class='id'>{_e(x.get('id'))}</td>"
        f"<td class='detail'>{_e(x.get('measured') or x.get('detail'))}</td>"
        f"<td class='n'>{_e(x.get('chars', ''))}</td>"
        f"<td class='preview'>{_e(x.get('preview', ''))}</td></tr>"
        for x in items
    ]
    return (
        f"<table class='examples' data-stage='{_e(stage)}' data-reason='{_e(reason)}' "
        f"data-kind='{kind}'>{head}{''.join(rows)}</table>"
    )


def render_html(run_dir: Path) -> str:
    """The report page of `run_dir` (a run without finished stages says so)."""
    run = RunLayout(run_dir)
    rows = stage_rows(run_dir)
    parts = [f"<h1>lmpipe report: <code>{_e(run.location())}</code></h1>"]
    if not rows:
        parts.append("<p>No finished stages in this run directory.</p>")
    else:
        parts += ["<h2 id='funnel'>Funnel</h2>", funnel_chart(rows)]
        parts.append(
            "<table id='funnel-table'><tr><th>stage</th><th>records in</th><th>documents out</th>"
            "<th>rejected</th><th>skipped</th><th>seconds</th></tr>"
            + "".join(
                f"<tr><td>{_e(r['stage'])}</td><td class='n'>{r['in']:,}</td>"
                f"<td class='n'>{r['out']:,}</td><td class='n'>{r['rejected']:,}</td>"
                f"<td class='n'>{r['skipped']:,}</td><td class='n'>{_e(r['seconds'])}</td></tr>"
                for r in rows
            )
            + "</table>"
        )
    if steps := clean_steps(run_dir):
        parts.append("<h3>clean, step by step</h3><table><tr><th>step</th><th>in</th>"
                     "<th>kept</th><th>dropped</th><th>reasons</th></tr>")  # fmt: skip
        parts += [
            f"<tr><td>{_e(s['step'])}</td><td class='n'>{s['in']:,}</td>"
            f"<td class='n'>{s['kept']:,}</td><td class='n'>{s['dropped']:,}</td>"
            f"<td>{_e(s['top'])}</td></tr>"
            for s in steps
        ]
        parts.append("</table>")
    parts.append("<h2 id='examples'>Examples per drop reason</h2>")
    any_examples = False
    for stage in DATA_STAGES:
        m = read_manifest(run.stage(stage))
        if not m:
            continue
        ex = read_examples(run.stage(stage))
        reasons = m.get("reasons", {})
        section = [f"<h3>{_e(stage)}</h3>"]
        for reason, n in sorted(reasons.items(), key=lambda x: -x[1]):
            items = ex.get("rejected", {}).get(reason, [])
            shown = f"{len(items)} of {n:,}" if items else f"none sampled of {n:,}"
            section.append(
                f"<details class='reason' data-stage='{_e(stage)}' data-reason='{_e(reason)}'>"
                f"<summary><b>{_e(reason)}</b>: {shown} dropped documents</summary>"
                f"{_examples_table(stage, reason, items)}</details>"
            )
            any_examples = any_examples or bool(items)
        if ex.get("kept"):
            section.append(
                f"<details class='kept' data-stage='{_e(stage)}'><summary>kept: a sample of "
                f"{len(ex['kept'])}</summary>{_examples_table(stage, '', ex['kept'], True)}"
                "</details>"
            )
        if len(section) > 1:
            parts += section
    if not any_examples:
        parts.append("<p>No dropped document was sampled (no drops, or no examples.json).</p>")
    corpus = corpus_of(run_dir)
    if corpus:
        cols = corpus_columns(run.stage(corpus))
        parts.append(f"<h2 id='corpus'>Curated corpus (<code>{_e(corpus)}/</code>)</h2>")
        if cols["chars"]:
            parts += ["<h3>Document length</h3>", histogram(cols["chars"], "characters")]
        for name, values in cols.items():
            if name != "chars" and values:
                label = "language-ID score of the document's language"
                label = label if name == "language_score" else name
                parts += [f"<h3>Score: {_e(name)}</h3>", histogram(values, label)]
    if tokens := token_lines(run_dir):
        parts.append("<h2 id='tokens'>Tokens</h2><ul>")
        parts += [f"<li>{_e(line)}</li>" for line in tokens]
        parts.append("</ul>")
    if curve := loss_chart(run.pretrain):
        parts += ["<h2 id='loss'>Pretraining loss</h2>", curve]
    ev = read_manifest(run.evaluate) or {}
    scores = {k: v for k, v in ev.get("metrics", {}).items() if isinstance(v, int | float)}
    if scores:
        parts.append("<h2 id='scores'>Evaluation</h2><table><tr><th>metric</th><th>value</th></tr>")
        parts += [
            f"<tr><td>{_e(k)}</td><td class='n'>{v:.4g}</td></tr>"
            for k, v in sorted(scores.items())
        ]
        parts.append("</table>")
    if model := model_lines(run_dir):
        parts.append("<h2 id='model'>Model</h2><ul>")
        parts += [f"<li>{_e(line)}</li>" for line in model]
        parts.append("</ul>")
    if corpus:
        parts += ["<h2 id='card'>Corpus card</h2>",
                  f"<pre class='card'>{_e(render_card(run_dir))}</pre>"]  # fmt: skip
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>lmpipe report: {_e(Path(str(run_dir)).name)}</title><style>{STYLE}</style>"
        f"</head><body>\n{body}\n</body></html>\n"
    )


REPORT_HTML = "report.html"
"""The page the flows write into the run directory and link from their Prefect run."""
REPORT_ARTIFACT = "run-report"


def publish_html(run_dir: Path, write: bool = True) -> str | None:
    """Write the page as `<run_dir>/report.html` (atomically; in a run on a bucket, uploaded) and
    link it from the current Prefect flow run as the `run-report` link artifact (Prefect 3's
    artifacts are markdown, tables, links, progress and images, none a whole page: the parts are
    artifacts of their own). Returns the link: a `file://` URI, or the object's URL on a bucket.
    `write=False` only links the page a subflow wrote (the end-to-end flow). A page that cannot
    be rendered is one ERROR line in the run's log, and None: the run's stages are done.
    """
    from prefect import get_run_logger
    from prefect.artifacts import create_link_artifact

    from pipeline.core.stage import atomic_path

    run = RunLayout(run_dir)
    path = Path(run.run_dir) / REPORT_HTML
    if write:
        try:
            page = render_html(run.run_dir)
        except Exception as exc:  # the stages' work is done: the page must not fail the run
            get_run_logger().error(
                "report page not written (%s: %s); the run's stages are unaffected: "
                "`lmpipe report %s --html FILE` retries it",
                type(exc).__name__, exc, run.location(),
            )  # fmt: skip
            return None
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
    where = f"{run.location().rstrip('/')}/{REPORT_HTML}"
    link = where if "://" in where else path.resolve().as_uri()
    create_link_artifact(
        link,
        link_text=f"lmpipe report of {run.location()}",
        key=REPORT_ARTIFACT,
        description="the whole report as one page: funnel, examples, histograms, loss, scores",
    )
    return link


def write_html(run_dir: Path, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(run_dir), encoding="utf-8")
    return path
