"""The plots: program graph, history, runs, untrained vs trained; `icldsl graph` and `icldsl plot`."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path

import pytest
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyBboxPatch, FancyArrowPatch, Rectangle
from matplotlib.text import Text

import icldsl
from icldsl import artifact, plots
from icldsl.cli import main
from icldsl.language.compiler import compile_file, compile_source
from icldsl.language.specs import ProgramSpec
from icldsl.runtime.state import Demo, StepState, spec_and_states
from icldsl.language.source import Source
from icldsl.training.training_record import ScoreRecord, TrainingRecord
from tests.scripted import ScriptedLM, last_input

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def text_at(fig, content: str) -> tuple[float, float]:
    return next(t.get_position() for t in fig.findobj(Text) if t.get_text() == content)


# ---- the program graph -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "programs").glob("*.icl")), ids=lambda p: p.stem)
def test_every_example_program_draws(path: Path) -> None:
    compiled = compile_file(path)
    for spec, states in (spec_and_states(compiled, name) for name in compiled.programs):
        fig = plots.program_graph(spec, states)
        shown = texts(fig)
        assert any(t.startswith(f"Program {spec.name}") for t in shown)
        assert shown.count("output") == len(spec.outputs)
        for step in spec.lm_steps():
            assert any(step.kind in t for t in shown), step.name
        assert plots.render(fig).startswith(PNG)


def test_support_graph_shows_the_branch_frozen_and_trainable_steps() -> None:
    spec, states = spec_and_states(compile_file(ROOT / "programs" / "support.icl"), "support")
    shown = texts(plots.program_graph(spec, states))
    assert "route = decide" in shown and "frozen" in shown
    assert '"billing" ⇒ generate' in shown and '"technical" ⇒ chain_of_thought' in shown
    assert "otherwise ⇒ generate" in shown
    assert "on route.team" in shown and "answer (the arm that ran)" in shown
    assert shown.count("trainable · 0 examples") == 3
    legend = [t for t in shown if t in ("input", "decide", "branch", "generate", "chain_of_thought", "trainable",
                                        "frozen")]
    assert set(legend) == {"input", "decide", "branch", "generate", "chain_of_thought", "trainable", "frozen"}


@dataclasses.dataclass(frozen=True)
class CritiqueStep:
    """A step kind the drawing code has never heard of, with a field of its own."""

    name: str
    kind: str
    model: str
    sources: tuple[str, ...]
    lm: str
    path: str
    reviews: str
    rounds: int = 2


SOURCE = """
model Q { question: str "q" }
model B { low: float "a low guess" }
model C { high: float "a high guess" }
model A { answer: float "a" }
lm m = "openai/x" { base_url: "http://127.0.0.1:9/v1" }
program p "A diamond" {
    input q: Q
    b = generate B from q
    c = chain_of_thought C from q
    d = generate A from b + c
    output d
}
"""


def diamond() -> tuple[ProgramSpec, dict[str, StepState]]:
    return spec_and_states(compile_source(Source("p.icl", SOURCE)), "p")


def test_layers_follow_the_wiring() -> None:
    spec, states = diamond()
    fig = plots.program_graph(spec, states)
    (xq, _), (xb, yb), (xc, yc), (xd, _) = (text_at(fig, t) for t in
                                             ("input q", "b = generate", "c = chain_of_thought", "d = generate"))
    assert xq < xb == xc < xd and yb != yc
    arrows = [p for p in fig.findobj(FancyArrowPatch)]
    assert len(arrows) == 4  # q->b, q->c, b->d, c->d


def test_trained_state_is_shown() -> None:
    spec, states = diamond()
    demo = Demo({"question": "1+1"}, {"answer": 2.0}, 1.0, "d.jsonl:3")
    states = {**states, "p/b": StepState("x", (demo, demo)), "p/c": StepState("y", (), frozen=True)}
    shown = texts(plots.program_graph(spec, states))
    assert "trainable · 2 examples" in shown and "frozen" in shown and shown.count("trainable · 0 examples") == 1


def test_a_new_step_kind_draws_without_code_changes() -> None:
    spec, states = diamond()
    critique = CritiqueStep("e", "critique", "A", ("d",), "m", "p/e", reviews="b")
    spec = dataclasses.replace(spec, steps=(*spec.steps, critique), outputs=("e",))
    fig = plots.program_graph(spec, {**states, "p/e": StepState("judge")})
    shown = texts(fig)
    assert "e = critique" in shown and "reviews: b" in shown and "rounds: 2" in shown
    assert "critique" in shown and "refers to" in shown  # legend entries
    dashed = [p for p in fig.findobj(FancyArrowPatch) if p.get_linestyle() != "-"]
    assert len(dashed) == 1  # e -> b, the reference
    assert plots.kind_colour("critique") == plots.kind_colour("critique") != plots.kind_colour("generate")


def test_graph_renders_deterministically_as_png_and_svg(tmp_path: Path) -> None:
    spec, states = diamond()
    assert plots.render(plots.program_graph(spec, states)) == plots.render(plots.program_graph(spec, states))
    svg = plots.save(plots.program_graph(spec, states), tmp_path / "g.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    with pytest.raises(ValueError, match=r"cannot draw g.pdf: use a .png or .svg file name"):
        plots.save(plots.program_graph(spec, states), tmp_path / "g.pdf")


# ---- history, runs, comparison ------------------------------------------------------------------


def test_history_pairs_every_metric_with_its_validation_twin() -> None:
    history = {"reward": [0.4, 0.6], "val_reward": [0.5, 0.7], "accuracy": [0.3, 0.5], "val_accuracy": [0.2, 0.6],
               "val_f1": [0.1, 0.2]}
    assert plots.metric_names(history) == ["reward", "accuracy", "f1"]
    fig = plots.history_plot(history, program="p", initial={"val_reward": 0.1}, best_epoch=2)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["reward", "accuracy", "f1"]
    reward_ax = axes[0]
    lines = {line.get_label(): line for line in reward_ax.get_lines()}
    assert list(lines["training"].get_xdata()) == [1, 2] and list(lines["training"].get_ydata()) == [0.4, 0.6]
    assert list(lines["validation"].get_xdata()) == [0, 1, 2]
    assert list(lines["validation"].get_ydata()) == [0.1, 0.5, 0.7]
    assert list(lines["kept: epoch 2"].get_xdata()) == [2, 2]
    assert reward_ax.get_xlabel() == "epoch" and reward_ax.get_ylabel() == "reward"
    assert [t.get_text() for t in reward_ax.get_legend().get_texts()] == ["training", "validation", "kept: epoch 2"]
    assert "training" not in {line.get_label() for line in axes[2].get_lines()}  # f1 has only validation
    assert fig.get_suptitle() == "Training history: p"


def test_history_without_epochs_says_so() -> None:
    fig = plots.history_plot({}, program="p")
    assert "no epochs were run" in texts(fig)


SCORES_JSON = {
    "trained": {"reward_mean": 0.6, "reward_std": 0.1, "rewards": [0.5, 0.7], "examples": 10, "failures": [0, 1]},
    "untrained": {"reward_mean": 0.25, "reward_std": 0.05, "rewards": [0.2, 0.3], "examples": 10, "failures": [2, 2]},
}
SCORES = {label: ScoreRecord.from_json(doc) for label, doc in SCORES_JSON.items()}


def test_runs_plot_shows_each_run_and_the_mean() -> None:
    fig = plots.runs_plot(SCORES, program="p")
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    points = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert points == {"untrained: 0.250 ± 0.050": [0.2, 0.3], "trained: 0.600 ± 0.100": [0.5, 0.7]}
    means = sorted(float(c.get_segments()[0][0][1]) for c in ax.collections if isinstance(c, LineCollection))
    assert means == [0.25, 0.6]
    assert fig.get_suptitle() == "Test score over 2 runs (mean ± std): p"
    assert ax.get_xlabel() == "run" and ax.get_ylabel() == "test reward"


def test_comparison_plot_puts_untrained_beside_trained() -> None:
    fig = plots.comparison_plot(SCORES, program="p")
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [round(b.get_height(), 3) for b in bars] == [0.25, 0.6]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["untrained", "trained"]
    assert "0.250" in texts(fig) and "0.600" in texts(fig)
    assert ax.get_title() == "test set, mean ± std over 2 runs"
    assert fig.get_suptitle() == "Untrained vs trained: p"


def test_comparison_plot_gives_counts_a_panel_of_their_own_scale() -> None:
    scores = {label: ScoreRecord.from_json({**SCORES_JSON[label], "tokens_mean": tokens, "tokens_std": 0.0,
                                            "tokens_runs": [tokens, tokens], "calls_mean": 40.0, "calls_std": 0.0,
                                            "calls_runs": [40, 40]})
              for label, tokens in (("untrained", 3200.0), ("trained", 5400.0))}
    fig = plots.comparison_plot(scores)
    quality, *counts = fig.axes
    assert [t.get_text() for t in quality.get_xticklabels()] == ["reward"] and quality.get_ylim()[1] < 1.2
    assert {ax.get_title(): ax.get_ylim()[1] for ax in counts}.keys() == {"calls", "tokens"}
    assert all(ax.get_ylim()[1] >= (5400 if ax.get_title() == "tokens" else 40) for ax in counts)
    shown = texts(fig)
    assert "5,400" in shown and "40" in shown and "40.000" not in shown


def test_graph_wraps_long_type_labels_inside_their_box() -> None:
    label = "numbers_without_any_particular_unit_at_all"
    source = SOURCE.replace('answer: float', f'unit: enum("apples", "{label}") "u"  answer: float')
    spec, states = spec_and_states(compile_source(Source("p.icl", source)), "p")
    fig = plots.program_graph(spec, states)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch)]
    lines = [t for t in fig.axes[0].texts if t.get_text()]
    assert "".join(t.get_text().strip() for t in lines).count(label) >= 1 and not any("…" in t.get_text()
                                                                                       for t in lines)
    for text in lines:
        extent = text.get_window_extent(renderer)
        box = next((b for b in boxes if b.x0 <= extent.x0 <= b.x1 and b.y0 <= extent.y0 <= b.y1), None)
        assert box is None or extent.x1 <= box.x1, f"{text.get_text()!r} runs out of its box"


def test_stem_and_paths() -> None:
    assert plots.stem("out/adder.artifact.json") == "adder"
    assert plots.stem("adder.json") == "adder"
    assert plots.stem("a.b") == "a.b"
    assert plots.plot_paths("out/x.artifact.json") == {n: Path(f"out/x.{n}.png") for n in plots.PLOTS}
    assert plots.plot_paths("x.json", "figs", "svg")["graph"] == Path("figs/x.graph.svg")


# ---- from an artifact, and the command line ---------------------------------------------------------


FIT_SOURCE = """
model Q {{ question: str "q" }}
model A {{ answer: float "a" }}
lm m = "openai/x" {{ base_url: "http://127.0.0.1:9/v1" }}
program adder {{ input q: Q  a = generate A from q  output a }}
data sums = jsonl("d.jsonl", split: 0.7)
train adder on sums {{
    reward exact_match() optimizer random_few_shot(nb_max_examples: 2) epochs 2 batch_size 4 runs 2
}}
"""


@pytest.fixture
def trained_artifact(tmp_path: Path) -> Path:
    rows = [f'{{"question": "{i}+{i + 1}", "answer": {2 * i + 1}}}' for i in range(14)]
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    compiled = compile_source(Source(str(tmp_path / "adder.icl"), FIT_SOURCE.format()))
    lm = ScriptedLM(lambda r: {"answer": sum(map(float, last_input(r)["question"].split("+")))
                               if len(r.messages) > 2 else -1.0})
    return icldsl.fit(compiled, output=tmp_path / "adder.artifact.json", clients={"m": lm}, report=False).path


def test_figures_of_an_artifact(trained_artifact: Path) -> None:
    doc = artifact.read(trained_artifact)
    figs = plots.figures(doc)
    assert list(figs) == list(plots.PLOTS)
    assert "trainable · 2 examples" in texts(figs["graph"])
    reward_ax = figs["history"].axes[0]
    assert {line.get_label() for line in reward_ax.get_lines()} >= {"training", "validation"}
    trained = next(line for line in figs["runs"].axes[0].get_lines() if line.get_label().startswith("trained"))
    assert len(trained.get_ydata()) == 2


def test_plot_redraws_beside_the_artifact_or_in_a_folder(trained_artifact: Path, capsys) -> None:
    assert main(["plot", str(trained_artifact)]) == 0
    for name in plots.PLOTS:
        assert (trained_artifact.parent / f"adder.{name}.png").read_bytes().startswith(PNG)
    assert f"wrote {trained_artifact.parent / 'adder.history.png'}" in capsys.readouterr().out
    out = trained_artifact.parent / "figs"
    assert main(["plot", str(trained_artifact), "-o", str(out), "--format", "svg", "--report"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"adder.{n}.svg" for n in plots.PLOTS] + ["adder.report.html"])
    assert "No predictions in this report" in (out / "adder.report.html").read_text()


def test_a_one_run_fit_draws_no_runs_plot_and_leaves_none_from_before(trained_artifact: Path) -> None:
    doc = artifact.read(trained_artifact)
    paths = plots.plot_paths(trained_artifact)
    assert list(plots.write_all(doc, paths)) == list(plots.PLOTS) and paths["runs"].exists()  # two runs
    one = copy.deepcopy(doc)
    for score in one["training"]["scores"].values():
        for key in [k for k in score if k.endswith("_runs") or k == "rewards"]:
            score[key] = score[key][:1]
    assert TrainingRecord.of_artifact(one).run_count == 1
    assert list(plots.write_all(one, paths)) == ["graph", "comparison", "history"]
    assert not paths["runs"].exists()  # the earlier fit's, which would pass for this one's


def test_plot_refuses_a_tampered_artifact(trained_artifact: Path, capsys) -> None:
    trained_artifact.write_text(trained_artifact.read_text().replace('"adder"', '"other"', 1))
    assert main(["plot", str(trained_artifact)]) == 1
    assert "modified" in capsys.readouterr().err


def test_graph_command_for_a_file_and_an_artifact(tmp_path: Path, trained_artifact: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", str(ROOT / "programs" / "support.icl"), "-o", "support.svg"]) == 0
    assert "<svg" in (tmp_path / "support.svg").read_text()
    assert main(["graph", str(ROOT / "programs" / "gsm8k.icl")]) == 0
    assert (tmp_path / "gsm8k_baseline.graph.png").read_bytes().startswith(PNG)
    assert main(["graph", str(trained_artifact), "-o", "trained.png"]) == 0
    assert (tmp_path / "trained.png").read_bytes().startswith(PNG)
    capsys.readouterr()
    assert main(["graph", str(ROOT / "programs" / "gsm8k.icl"), "--program", "nope"]) == 1
    assert "has no program `nope` (it has: gsm8k_baseline)" in capsys.readouterr().err
    assert main(["graph", str(ROOT / "programs" / "gsm8k.icl"), "-o", "g.jpg"]) == 1
    assert "use a .png or .svg file name" in capsys.readouterr().err


def test_graph_of_a_file_with_several_programs(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    two = SOURCE + SOURCE.replace("program p ", "program p2 ").split("lm m")[1].split("\n", 1)[1]
    (tmp_path / "two.icl").write_text(two, encoding="utf-8")
    assert main(["graph", "two.icl"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["p.graph.png", "p2.graph.png"]
    assert main(["graph", "two.icl", "-o", "one.png"]) == 1
    assert "has 2 programs; name one with --program" in capsys.readouterr().err
    assert main(["graph", "two.icl", "--program", "p2", "-o", "one.png"]) == 0
    assert (tmp_path / "one.png").is_file()


# ---- labels that look like TeX, and drawing that fails -------------------------------------------

# Strings matplotlib would read as mathtext (`$...$`) and fail to parse, as enum labels and a description.
PRICES = ("price_$_{low", "$5 \\to $10", "$x^{$")
PRICED = """
model Q {{ question: str "q" }}
model A {{ band: enum({labels}) "the price band" }}
lm m = "openai/x" {{ base_url: "http://127.0.0.1:9/v1" }}
program pricer "Costs $1 \\\\frac{{ to $2" {{ input q: Q  a = generate A from q  output a }}
data prices = jsonl("d.jsonl", split: 0.7)
train pricer on prices {{ reward exact_match() optimizer random_few_shot(nb_max_examples: 2) epochs 1 runs 2 }}
"""


def priced(folder: Path) -> Path:
    labels = ", ".join('"' + label.replace("\\", "\\\\") + '"' for label in PRICES)
    rows = [{"question": str(i), "band": PRICES[i % len(PRICES)]} for i in range(12)]
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "pricer.icl").write_text(PRICED.format(labels=labels), encoding="utf-8")
    return folder / "pricer.icl"


def band_of(request) -> dict:
    return {"band": PRICES[int(last_input(request)["question"]) % len(PRICES)] if len(request.messages) > 2
            else PRICES[0]}


def test_labels_that_look_like_tex_are_drawn_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    source = priced(tmp_path)
    spec, states = spec_and_states(compile_file(source), "pricer")
    assert spec.description == "Costs $1 \\frac{ to $2"
    fig = plots.program_graph(spec, states)
    assert plots.render(fig).startswith(PNG)
    shown = "".join(t.strip() for t in texts(fig))
    assert all(label in shown for label in PRICES) and "Program pricer: Costs $1 \\frac{ to $2" in texts(fig)

    fitted = icldsl.fit(source, output=tmp_path / "pricer.artifact.json", clients={"m": ScriptedLM(band_of)})
    assert artifact.read(fitted.path) == fitted.artifact
    assert sorted(p.name for p in fitted.files) == sorted(
        [*(f"pricer.{name}.png" for name in plots.PLOTS), "pricer.report.html"])
    for path in fitted.files[:-1]:
        assert path.read_bytes().startswith(PNG)
    html = fitted.files[-1].read_text(encoding="utf-8")
    assert all(label in html for label in PRICES)

    monkeypatch.chdir(tmp_path)
    assert main(["graph", "pricer.icl", "-o", "g.svg"]) == 0
    assert main(["graph", "pricer.artifact.json", "-o", "g.png"]) == 0
    assert main(["plot", "pricer.artifact.json", "--format", "svg"]) == 0
    svg = (tmp_path / "g.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "price_$_{low" in svg  # the text itself, not a formula's glyphs


def test_a_plot_that_fails_leaves_a_verified_artifact_and_one_warning(tmp_path: Path, monkeypatch, caplog) -> None:
    source = priced(tmp_path)

    def refused(fig, fmt="png"):
        raise ValueError("Image size of 99999x99999 pixels is too large.\nIt must be less than 2^16 in each direction.")

    monkeypatch.setattr(plots, "render", refused)
    with caplog.at_level(logging.WARNING, logger="icldsl"):
        fitted = icldsl.fit(source, output=tmp_path / "pricer.artifact.json", clients={"m": ScriptedLM(band_of)},
                            sign="k" * 32)
    assert fitted.files == () and fitted.signed
    assert artifact.read(fitted.path) == fitted.artifact  # written whole
    assert not (tmp_path / "pricer.checkpoint.json").exists()
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING and "not drawn" in r.getMessage()]
    message = warning.getMessage()
    assert "\n" not in message and "Image size of 99999x99999 pixels is too large" in message
    assert f"icldsl plot {tmp_path / 'pricer.artifact.json'} --report" in message
    assert icldsl.load(fitted.path, verify="k" * 32).spec.name == "pricer"


def test_a_summary_that_cannot_be_printed_loses_no_training(tmp_path: Path) -> None:
    source = priced(tmp_path)

    def closed(report) -> None:  # standard output closed (`icldsl fit ... | head -1`)
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        icldsl.fit(source, output=tmp_path / "pricer.artifact.json", clients={"m": ScriptedLM(band_of)},
                   on_trained=closed)
    doc = artifact.read(tmp_path / "pricer.artifact.json")
    assert doc["training"]["scores"]["trained"]["reward_mean"] == 1.0
    assert not (tmp_path / "pricer.checkpoint.json").exists()
