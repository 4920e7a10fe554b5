"""report.html: what it shows, that it is self-contained and escaped, that `fit` writes it with
the plots, and (in a real headless Chromium) that it loads cleanly and its filters work."""

from __future__ import annotations

import copy
import json
import re
import statistics
import shutil
from pathlib import Path

import pytest

import icldsl
from icldsl import artifact, plots, report
from icldsl.cli import main
from icldsl.language.compiler import compile_source
from icldsl.language.source import Source
from tests.adder import sum_of
from tests.loopback import LoopbackServer
from tests.scripted import ScriptedLM, last_input

NASTY = "<script>alert('x')</script> & <b>bold</b>"

SOURCE = """
model Q {{ question: str "Two numbers to add, like 2+3" }}
model A {{ answer: float "Their sum"  note: str "A remark" }}
lm m = "openai/x" {{ base_url: "http://127.0.0.1:9/v1" }}
program adder "Adds two numbers" {{ input q: Q  a = generate A from q  output a }}
data sums = jsonl("d.jsonl", split: 0.6)
train adder on sums {{
    reward exact_match(in_mask: ["answer"])
    optimizer random_few_shot(nb_max_examples: 2)
    epochs 2
    batch_size 4
    runs {runs}
}}
"""


def answer(request) -> dict:
    """Right with few-shot examples, except on sums starting with 1 (so some test rows fail)."""
    question = last_input(request)["question"]
    right = len(request.messages) > 2 and not question.startswith("1")
    return {"answer": sum_of(question) if right else -1.0, "note": NASTY}


def fit_in(folder: Path, source: str, rows: list[dict], lm: ScriptedLM):
    """`source` fitted on `rows` (its d.jsonl) with `lm` as its LM `m`: (folder, the fit)."""
    (folder / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    compiled = compile_source(Source(str(folder / "adder.icl"), source))
    return folder, icldsl.fit(compiled, clients={"m": lm}, write=False, report=False).report


@pytest.fixture
def fitted(tmp_path: Path):
    rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1, "note": "n"} for i in range(20)]
    return fit_in(tmp_path, SOURCE.format(runs=2), rows, ScriptedLM(answer))


def predictions(fit) -> list[report.PredictionSet]:
    return report.predictions_of(fit.untrained.runs[-1].scored, fit.trained.runs[-1].scored)


def test_prediction_rows_align_and_know_failures(fitted) -> None:
    _, fit = fitted
    (test_set,) = predictions(fit)
    assert test_set.columns == ("untrained", "trained")
    assert [r.origin for r in test_set.rows] == [s.example.origin for s in fit.trained.runs[-1].scored]
    for row, after in zip(test_set.rows, fit.trained.runs[-1].scored):
        assert row.predictions[-1].reward == after.reward
        assert row.failed == (after.reward < 1)
        assert row.changed == (row.predictions[0].reward != after.reward)
    assert any(r.failed for r in test_set.rows) and not all(r.failed for r in test_set.rows)
    validation = report.predictions_of((), fit.trained.runs[-1].scored, fit.trained.runs[-1].scored)[1]
    assert validation.name == "validation set" and validation.columns == ("trained",)


def test_report_shows_scores_state_usage_and_data(fitted) -> None:
    _, fit = fitted
    doc = fit.artifact
    html = report.build(doc, predictions=predictions(fit))
    scores = doc["training"]["scores"]
    assert f"{scores['untrained']['reward_mean']:.3f}" in html and f"{scores['trained']['reward_mean']:.3f}" in html
    assert "over 2 runs" in html
    state = doc["states"]["adder/a"]
    assert state["examples"], "training should have learned examples"
    for example in state["examples"]:
        assert example["origin"] in html
    assert state["instructions"] in html
    usage = doc["training"]["total_usage"]
    assert f">{usage['calls']:,}<" in html and f">{usage['prompt_tokens']:,}<" in html
    for digest in doc["training"]["data"]["fingerprint"].values():
        assert digest in html
    assert "No duplicated rows" in html
    assert html.count('<tr data-failed="1"') == sum(r.failed for r in predictions(fit)[0].rows)


def test_report_escapes_what_the_data_and_the_lm_say(fitted) -> None:
    _, fit = fitted
    html = report.build(fit.artifact, predictions=predictions(fit))
    assert NASTY not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert html.count("<script>") == 1  # the report's own filter script


def test_report_is_self_contained(fitted) -> None:
    _, fit = fitted
    pngs = {name: plots.render(fig) for name, fig in plots.figures(fit.artifact).items()}
    html = report.build(fit.artifact, images=pngs, predictions=predictions(fit))
    sources = re.findall(r'\b(?:src|href)="([^"#][^"]*)"', html)
    assert len(sources) == len(plots.PLOTS) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # nothing may load from anywhere, even if someone adds it


def test_report_without_predictions_or_training(fitted) -> None:
    _, fit = fitted
    html = report.build(fit.artifact)
    assert "No predictions in this report" in html and "<script>" not in html
    doc = {key: value for key, value in fit.artifact.items() if key != "training"}
    bare = report.build(doc)
    assert "adder" in bare and "No epochs were run" in bare


# ---- the headline, the folded rest, confusion matrices ---------------------------------------------

BASELINE = {"step": "adder/a", "field": "unit", "k": 5, "vote": {"mean": 0.625, "se": 0.09},
            "nearest1": {"mean": 0.5, "se": 0.1}, "trained_minus_vote": {"mean": 0.125, "se": 0.06, "n": 8}}


def scores_section(html: str) -> str:
    return html[html.index('<section id="scores">'):html.index('<section id="plots">')]


def test_the_headline_is_what_training_gained_with_its_standard_error(fitted) -> None:
    _, fit = fitted
    gain = fit.artifact["training"]["trained_minus_untrained"]
    last = [s.reward for s in fit.trained.runs[-1].scored], [s.reward for s in fit.untrained.runs[-1].scored]
    differences = [a - b for a, b in zip(*last)]
    assert gain["n"] == len(differences) and gain["mean"] == pytest.approx(sum(differences) / len(differences))
    assert gain["se"] == pytest.approx(statistics.stdev(differences) / len(differences) ** 0.5)

    section = scores_section(report.build(fit.artifact, predictions=predictions(fit)))
    headline = section[:section.index("<details")]
    assert f"{gain['mean']:+.3f} <span class=\"se\">± {gain['se']:.3f}</span>" in headline
    scores = fit.artifact["training"]["scores"]
    assert f"untrained {scores['untrained']['reward_mean']:.3f} → trained {scores['trained']['reward_mean']:.3f}" \
        in headline
    assert f"paired over {gain['n']} test examples" in headline and "retrieval baseline" not in headline
    assert "data-score=\"trained-" not in headline  # every other score is folded below it
    assert 'data-score="trained-reward"' in section and 'data-score="change-tokens"' in section

    older = copy.deepcopy(fit.artifact)  # an artifact from before the standard error was recorded
    del older["training"]["trained_minus_untrained"]
    headline = scores_section(report.build(older))
    change = scores["trained"]["reward_mean"] - scores["untrained"]["reward_mean"]
    assert f"{change:+.3f}</div>" in headline and "records no standard error" in headline


def test_the_retrieval_baseline_stands_beside_the_headline(fitted) -> None:
    _, fit = fitted
    doc = copy.deepcopy(fit.artifact)
    doc["training"]["baselines"] = [BASELINE]  # as the retrieval baseline records it
    section = scores_section(report.build(doc))
    baseline = section[section.index('data-baseline="adder/a"'):section.index("<details")]
    assert "the 5 nearest training examples vote on <code>unit</code> of adder/a" in baseline
    assert '0.625 <span class="se">± 0.090</span>' in baseline
    assert "the nearest one alone 0.500 ± 0.100" in baseline
    assert "trained − vote <b>+0.125</b> ± 0.060 (n=8)" in baseline


def test_confusion_matrices_count_expected_by_predicted_labels(retrieved) -> None:
    _, fit = retrieved
    apples, numbers = "apples", "numbers_without_any_particular_unit_at_all"

    def row(expected: str, untrained: str | None, trained: str | None) -> report.PredictionRow:
        def made(unit):
            return report.Prediction(None if unit is None else {"answer": 1.0, "unit": unit, "thinking": "t"},
                                     None if unit else "no answer", 1.0 if unit == expected else 0.0)
        return report.PredictionRow("d.jsonl:1", {"question": "1+0"}, {"answer": 1.0, "unit": expected, "thinking": "t"},
                                    (made(untrained), made(trained)))

    rows = (row(apples, apples, apples), row(apples, numbers, numbers), row(numbers, apples, numbers),
            row(numbers, numbers, numbers), row(numbers, numbers, None))
    test_set = report.PredictionSet(report.TEST_SET, ("untrained", "trained"), rows)
    (unit,) = report.context(fit.artifact, {}, [test_set])["confusions"]
    trained, untrained = unit["matrices"]
    assert unit["field"] == "unit" and (trained["column"], untrained["column"]) == ("trained", "untrained")
    assert trained["predicted"] == [apples, numbers, report.NO_OUTPUT] and untrained["predicted"] == [apples, numbers]
    assert [(r["label"], [c["n"] for c in r["cells"]]) for r in trained["rows"]] == [(apples, [1, 1, 0]),
                                                                                  (numbers, [0, 2, 1])]
    assert [(r["label"], [c["n"] for c in r["cells"]]) for r in untrained["rows"]] == [(apples, [1, 1]),
                                                                                    (numbers, [1, 2])]
    assert (trained["right"], untrained["right"], trained["total"]) == (3, 3, 5)
    html = report.build(fit.artifact, predictions=[test_set])
    matrix = html[html.index('data-confusion="unit" data-column="trained"'):]
    matrix = matrix[:matrix.index("</table>")]
    assert "trained: 3 of 5 right" in matrix and "numbers_<wbr>without_<wbr>any_<wbr>particular_" in matrix
    assert [int(n) for n in re.findall(r'<td class="num[^"]*"[^>]*>(\d+)</td>', matrix)] == [1, 1, 2, 2, 1, 3]  # each row, then its total
    assert report.context(fit.artifact, {}, [])["confusions"] == []  # none without the test predictions


def test_breakable_breaks_between_parts_never_inside_a_word() -> None:
    assert report.breakable("intents:data_full.json:12") == (
        '<span class="part">intents:</span><wbr><span class="part">data_<wbr>full.<wbr>json:</span><wbr>'
        '<span class="part">12</span>')
    assert report.breakable("<b>_x") == "&lt;b&gt;_<wbr>x"
    assert report.origin_width(["a:b:1"]) == "8ch" and report.origin_width(["x" * 90]) == f"{report.ORIGIN_MAX + 3}ch"


# ---- what `icldsl fit` writes --------------------------------------------------------------------

CLI_SOURCE = SOURCE.replace('{{ base_url: "http://127.0.0.1:9/v1" }}', '{{ base_url: "{url}" }}')


def loopback_answer(request) -> dict:
    question = json.loads(request.last_user_message)["question"]
    right = len(request.messages) > 2 and not question.startswith("1")
    return {"answer": sum_of(question) if right else -1.0, "note": NASTY}


@pytest.fixture
def cli_project(tmp_path: Path):
    with LoopbackServer(loopback_answer) as server:
        rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1, "note": "n"} for i in range(20)]
        (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        (tmp_path / "adder.icl").write_text(CLI_SOURCE.format(url=server.openai_url, runs=1), encoding="utf-8")
        yield tmp_path


def test_fit_writes_the_report_and_the_plots_beside_the_artifact(cli_project: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(cli_project)
    assert main(["fit", "adder.icl", "--quiet", "-o", "out/adder.artifact.json"]) == 0
    out = capsys.readouterr().out
    drawn = [name for name in plots.PLOTS if name != "runs"]  # one run: no plot of the runs
    written = sorted(p.name for p in (cli_project / "out").iterdir())
    assert written == sorted(["adder.artifact.json", "adder.report.html", "adder.history.csv",
                              *(f"adder.{name}.png" for name in drawn)])
    assert f"wrote {Path('out') / 'adder.report.html'} and 3 plots (adder.graph.png, adder.comparison.png, " \
           "adder.history.png)" in out
    html = (cli_project / "out" / "adder.report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3 and 'id="plot-runs"' not in html
    doc = artifact.read(cli_project / "out" / "adder.artifact.json")
    assert f"{doc['training']['scores']['trained']['reward_mean']:.3f}" in html
    for name in drawn:
        assert (cli_project / "out" / f"adder.{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_no_report_writes_only_the_artifact_and_its_history(cli_project: Path, monkeypatch) -> None:
    monkeypatch.chdir(cli_project)
    assert main(["fit", "adder.icl", "--quiet", "--no-report"]) == 0
    # The checkpoint is gone once the artifact is written; the CSV history stays.
    assert sorted(p.name for p in cli_project.iterdir() if not p.name.endswith((".icl", ".jsonl"))) == [
        "adder.artifact.json", "adder.history.csv"]


# ---- in a real browser ---------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager look anything up
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_in_a_browser_loads_cleanly_and_filters_failures(fitted, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    tmp_path, fit = fitted
    pngs = {name: plots.render(fig) for name, fig in plots.figures(fit.artifact).items()}
    sets = [*predictions(fit), report.PredictionSet.of("validation set", {"trained": fit.trained.runs[0].scored[:3]})]
    page = report.write(tmp_path / "adder.report.html", fit.artifact, images=pngs, predictions=sets)
    browser.get(page.as_uri())

    assert browser.title == "adder: icldsl report"
    problems = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == []
    scores = fit.artifact["training"]["scores"]
    gain = fit.artifact["training"]["trained_minus_untrained"]
    headline = browser.find_element(By.CSS_SELECTOR, '[data-score="headline"] .value')
    assert headline.is_displayed() and headline.text == f"{gain['mean']:+.3f} ± {gain['se']:.3f}"
    card = browser.find_element(By.CSS_SELECTOR, '[data-score="trained-reward"] .value')
    assert not card.is_displayed()  # every other score is folded under the headline
    browser.find_element(By.CSS_SELECTOR, "#all-scores > summary").click()
    assert card.is_displayed() and card.text == f"{scores['trained']['reward_mean']:.3f}"
    assert browser.find_element(By.CSS_SELECTOR, '[data-score="untrained-reward"] .value').text == (
        f"{scores['untrained']['reward_mean']:.3f}")
    images = browser.find_elements(By.CSS_SELECTOR, "#plots figure img")
    assert len(images) == 4 and all(browser.execute_script("return arguments[0].naturalWidth", i) > 300
                                    for i in images)

    rows = browser.find_elements(By.CSS_SELECTOR, 'table.predictions[data-set="0"] tbody tr')
    failed = [r for r in rows if r.get_attribute("data-failed") == "1"]
    assert 0 < len(failed) < len(rows)
    count = browser.find_element(By.ID, "pred-count")
    assert count.text == f"{len(rows)} of {len(rows)} shown" and all(r.is_displayed() for r in rows)
    shown_note = rows[0].text
    assert NASTY in shown_note  # shown as text, not run as markup

    browser.find_element(By.ID, "only-failures").click()
    assert [r.is_displayed() for r in rows] == [r.get_attribute("data-failed") == "1" for r in rows]
    assert count.text == f"{len(failed)} of {len(rows)} shown"
    assert all("fail" in r.find_elements(By.CSS_SELECTOR, "td.num")[-1].get_attribute("class")
               for r in rows if r.is_displayed())

    browser.find_element(By.ID, "only-failures").click()
    origin = rows[-1].find_elements(By.TAG_NAME, "td")[1].text
    search = browser.find_element(By.ID, "pred-search")
    search.send_keys(origin.rsplit("/", 1)[-1])
    assert [r.is_displayed() for r in rows] == [r.find_elements(By.TAG_NAME, "td")[1].text.endswith(
        origin.rsplit("/", 1)[-1]) for r in rows]
    search.clear()
    search.send_keys(" ")  # the input event of a space: back to every row
    assert all(r.is_displayed() for r in rows)

    Select(browser.find_element(By.ID, "pred-set")).select_by_index(1)
    assert not browser.find_element(By.CSS_SELECTOR, 'table.predictions[data-set="0"]').is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, 'table.predictions[data-set="1"]').is_displayed()
    assert browser.find_element(By.ID, "only-changed").get_attribute("disabled") == "true"
    assert count.text == "3 of 3 shown"
    assert browser.get_log("browser") == []


# ---- retrieved examples, and how the page reads at 1300 px ---------------------------------------

RETRIEVING = """
model Q {{ question: str "Two numbers to add" }}
model A {{ thinking: str "How the sum is found"  answer: float "Their sum"
          unit: enum("apples", "numbers_without_any_particular_unit_at_all") "What is counted" }}
lm m = "openai/x" {{ base_url: "http://127.0.0.1:9/v1" }}
program adder "Adds two numbers" {{ input q: Q  a = generate A from q  output a }}
data arithmetic_questions_set = jsonl("d.jsonl", split: 0.6)
train adder on arithmetic_questions_set {{
    reward exact_match(in_mask: ["answer"])
    optimizer nearest_few_shot(k: 2)
    validation_split 0.5
    runs 2
}}
"""
MARKUP = "<i>x</i>&"  # in every question, so the pool and the retrieved examples must escape it


class CountingLM(ScriptedLM):
    """Reports prompt tokens by the prompt's length, so a trained prompt costs more."""

    async def complete(self, request):
        response = await super().complete(request)
        prompt = sum(len(m.content) for m in request.messages) // 4
        return type(response)(response.text, type(response.usage)(prompt_tokens=prompt, completion_tokens=5))


def retrieving_answer(request) -> dict:
    """Right only with examples before the input, with reasoning longer than the answer."""
    question = last_input(request)["question"]
    a, b = (float(n) for n in question.split(MARKUP)[0].split("+"))
    return {"thinking": "First I add the ones, then the tens. " * 6, "answer": a + b if len(request.messages) > 2
            else -1.0, "unit": "numbers_without_any_particular_unit_at_all"}


@pytest.fixture
def retrieved(tmp_path: Path):
    rows = [{"question": f"{i}+{i + 1}{MARKUP}", "answer": 2 * i + 1, "thinking": "t",
             "unit": "numbers_without_any_particular_unit_at_all"} for i in range(100)]  # 30 validation rows
    return fit_in(tmp_path, RETRIEVING.format(), rows, CountingLM(retrieving_answer))


def test_report_shows_the_pool_and_the_examples_each_prediction_retrieved(retrieved) -> None:
    _, fit = retrieved
    pool = fit.artifact["states"]["adder/a"]["retrieval"]["examples"]
    html = report.build(fit.artifact, predictions=predictions(fit))
    section = html[html.index('data-pool="adder/a"'):html.index('<section id="usage"')]
    assert f"the pool: {len(pool)} examples" in section
    for example in pool:
        assert f'title="{example["origin"]}"' in section
    assert MARKUP not in html and "&lt;i&gt;x&lt;/i&gt;&amp;" in section
    (baseline,) = fit.artifact["training"]["baselines"]  # the retriever alone, on the enum field
    assert baseline["field"] == "unit" and baseline["vote"]["mean"] == 1.0
    # what the fit stored is what the headline shows
    shown = html[html.index('data-baseline="adder/a"'):]
    assert "the 2 nearest training examples vote on <code>unit</code> of adder/a" in shown
    assert "trained − vote <b>+0.000</b> ± 0.000 (n=40)" in shown
    table = html[html.index('<table class="predictions" data-set="0"'):]
    rows = table.split('<tr data-failed=')[1:]
    scored = fit.trained.runs[-1].scored
    assert len(rows) == len(scored)
    for row, trained in zip(rows, scored):
        origins = trained.trace.steps["adder/a"].retrieved
        assert len(origins) == 2
        details = row[row.index('<details class="retrieved" data-step="adder/a">'):row.index("</details>")]
        assert re.findall(r'<li><span class="mono" title="([^"]*)"', details) == list(origins)
        assert "&lt;i&gt;x&lt;/i&gt;&amp;" in details  # the retrieved example's input, escaped
        assert details.count("<details") == 1  # only the trained column retrieved anything
        cell = row[:row.index('<details class="retrieved"')].rsplit('<div class="cell">', 1)[1]
        assert cell.index("<b>answer</b>") < cell.index("<b>thinking</b>")  # the answer before long reasoning


def test_report_reads_well_at_1300_px(retrieved, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tmp_path, fit = retrieved
    doc = copy.deepcopy(fit.artifact)
    doc["training"]["baselines"] = [BASELINE]
    pngs = {name: plots.render(fig) for name, fig in plots.figures(doc).items()}
    page = report.write(tmp_path / "adder.report.html", doc, images=pngs, predictions=predictions(fit))
    browser.set_window_size(1300, 1000)
    browser.get(page.as_uri())
    width = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    scroll, client = browser.execute_script(width)
    assert 1200 < client and scroll <= client  # no horizontal scrollbar
    # One headline, the baseline beside it, and every other score folded.
    gain = browser.find_element(By.CSS_SELECTOR, '[data-score="headline"]')
    baseline = browser.find_element(By.CSS_SELECTOR, '[data-baseline="adder/a"]')
    assert gain.is_displayed() and baseline.is_displayed() and gain.location["y"] == baseline.location["y"]
    assert baseline.location["x"] > gain.location["x"] + gain.size["width"]
    assert not any(e.is_displayed() for e in browser.find_elements(By.CSS_SELECTOR, "#scores td, #scores table"))
    for details in browser.find_elements(By.TAG_NAME, "details"):
        browser.execute_script("arguments[0].open = true", details)
    scroll, client = browser.execute_script(width)
    assert scroll <= client, "an opened list of examples widened the page"
    matrix = browser.find_element(By.CSS_SELECTOR, 'table.confusion[data-column="trained"]')
    assert matrix.is_displayed() and "trained: " in matrix.text
    # The "from" column breaks a long origin between its parts, never inside one.
    origins = browser.find_elements(By.CSS_SELECTOR, 'table.predictions[data-set="0"] div.origin')
    text = "return arguments[0].textContent"
    assert origins and all(browser.execute_script(text, o).startswith("arithmetic_questions_set:d.jsonl:") for o in origins)
    wrapped = ("var parts = arguments[0].querySelectorAll('.part'); return parts[0].getBoundingClientRect().top"
               " < parts[parts.length - 1].getBoundingClientRect().top")
    assert all(browser.execute_script(wrapped, o) for o in origins)  # too long for one line: wrapped at a colon,
    lines = "return arguments[0].getClientRects().length"
    assert all(browser.execute_script(lines, part) == 1  # and no part broken inside
               for part in browser.find_elements(By.CSS_SELECTOR, 'table.predictions[data-set="0"] div.origin .part'))
    assert all(browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", o)
               for o in origins)

    scores = fit.artifact["training"]["scores"]
    for metric in ("failures", "calls", "tokens"):
        for label in ("untrained", "trained"):
            text = browser.find_element(By.CSS_SELECTOR, f'[data-score="{label}-{metric}"] .value').text
            assert re.fullmatch(r"\d{1,3}(,\d{3})*", text), f"{label} {metric} shows {text!r}, not a whole number"
            assert text == f"{scores[label][f'{metric}_mean']:,.0f}"
    assert scores["trained"]["tokens_mean"] > scores["untrained"]["tokens_mean"]  # examples make longer prompts
    tokens = browser.find_element(By.CSS_SELECTOR, '[data-score="change-tokens"] .value')
    assert tokens.text.startswith("+") and tokens.get_attribute("class").split() == ["value"]  # a cost: neither good nor bad
    reward = browser.find_element(By.CSS_SELECTOR, '[data-score="change-reward"] .value')
    assert "up" in reward.get_attribute("class").split()
    training = browser.find_element(By.ID, "training").text
    assert "null" not in training and "None" not in training and "nearest_few_shot(k: 2)" in training

    main_width = browser.execute_script("return document.querySelector('#plots').clientWidth")
    figures = browser.find_elements(By.CSS_SELECTOR, "#plots figure img")
    assert len(figures) == len(plots.PLOTS)
    viewer = browser.find_element(By.ID, "viewer")
    for image in figures:
        natural, shown = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].clientWidth]", image)
        assert shown >= min(natural, main_width) - 4, "a plot is drawn smaller than the page has room for"
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        image.click()
        assert viewer.is_displayed()
        full = browser.find_element(By.ID, "viewer-image")
        assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].clientWidth]", full) == [
            natural, natural]  # full size
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        assert not viewer.is_displayed()

    row = browser.find_elements(By.CSS_SELECTOR, 'table.predictions[data-set="0"] tbody tr')[0]
    trained = row.find_elements(By.TAG_NAME, "td")[-2].text
    assert trained.index("answer:") < trained.index("unit:") < trained.index("thinking:")
    pool = browser.find_element(By.CSS_SELECTOR, '[data-pool="adder/a"]')
    assert MARKUP.replace("&", "") not in pool.get_attribute("innerHTML") and "<i>x</i>&" in pool.text
    assert browser.get_log("browser") == []
