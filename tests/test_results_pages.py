"""``tools/results_pages.py``: README's headline block, ``docs/results/speed.md`` and
``fairness.md`` are what the ledgers give (drift fails here), and the generator's verdicts, paired
comparisons, fall-backs and one-commit check are computed, on temporary ledgers."""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import sys
from pathlib import Path

import pytest

from gatelab.core.harness import ledger
from gatelab.core.harness.stats import paired_difference

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gatelab_results_pages", ROOT / "tools" / "results_pages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


rp = _load()


def test_committed_pages_match_the_ledgers():
    diffs = rp.check(ROOT)
    assert not diffs, "results pages drifted from the ledgers; run `python tools/results_pages.py`:\n" + "\n".join(
        d[:4000] for d in diffs
    )


def test_verdicts_are_computed_from_the_interval():
    assert rp.verdict(3.2, 3.0, True, 3.1, 3.3) == "met"
    assert rp.verdict(3.2, 3.0, True, 2.9, 3.3) == "not significant"
    assert rp.verdict(2.7, 3.0, True, 2.4, 2.9) == "missed"
    assert rp.verdict(3.0, 3.0, True) == "met (no CI)"
    assert rp.verdict(2.99, 3.0, True) == "missed (no CI)"
    assert rp.verdict(1.5, 2.0, False, 1.4, 1.6) == "met"  # lower is better (overhead in us)
    assert rp.verdict(2.5, 2.0, False, 2.1, 2.9) == "missed"
    assert rp.verdict(2.0, 2.0, False, 1.9, 2.1) == "not significant"


def _speed(folder: Path, model: str, split: str, speedup: float, lo: float, hi: float, date: str) -> None:
    ledger.append_records("recsys-speed", [{
        "model": model, "dataset": "frappe-sized", "split": split, "variant": "gatelab", "baseline": "fuxictr",
        "seed": 0, "speedup": speedup, "speedup_lo": lo, "speedup_hi": hi, "rounds": 7,
        "command": f"python benchmarks/recsys_speed.py --models {model}", "date": date,
    }], folder, render=False)  # fmt: skip


def test_speed_rows_pick_the_latest_row_and_say_what_is_pending(tmp_path):
    _speed(tmp_path, "finalmlp", "train-step", 2.5, 2.4, 2.6, "2026-01-01T00:00:00+00:00")
    _speed(tmp_path, "finalmlp", "train-step", 3.3, 3.1, 3.4, "2026-01-02T00:00:00+00:00")
    _speed(tmp_path, "gdcn-p", "train-step", 1.55, 1.45, 1.7, "2026-01-02T00:00:00+00:00")
    rows = {(r["goal"].model.split(",")[0], r["goal"].measure): r for r in rp.speed_rows(tmp_path)}
    fin = rows[("FinalMLP", "per step")]
    assert fin["verdict"] == "met" and fin["value"] == 3.3
    assert "95% CI 3.10x–3.40x" in fin["measured"] and "7 rounds" in fin["measured"]
    assert rows[("GDCN-P", "per step")]["verdict"] == "not significant"
    assert rows[("FinalMLP", "per epoch, end to end with data loading")]["verdict"] == "pending (not measured)"
    assert rows[("MAXIM-3S", "inference")]["verdict"] == "pending (no maxim-speed ledger)"
    assert rows[("SwiGLU kernel (Triton", "fwd+bwd, worst size")]["verdict"] == "pending (no GPU)"
    page = rp.render_speed(tmp_path)
    assert "| **missed" not in page and "`python benchmarks/recsys_speed.py --models finalmlp`" in page


def test_worst_of_several_gpu_rows_answers_a_kernel_goal(tmp_path):
    rows = [
        {"model": "swiglu", "dataset": "synthetic", "split": f"cuda/N={n}/torch.bfloat16", "variant": "triton",
         "baseline": "liger", "seed": 0, "speedup_vs_anchor": v}
        for n, v in ((1024, 1.2), (4096, 0.9))
    ] + [{"model": "swiglu", "dataset": "synthetic", "split": "cpu/N=8/torch.bfloat16", "variant": "triton",
          "baseline": "liger", "seed": 0, "speedup_vs_anchor": 0.1}]  # fmt: skip
    ledger.append_records("kernels", rows, tmp_path, render=False)
    (row,) = [r for r in rp.speed_rows(tmp_path) if r["goal"].model.startswith("SwiGLU")]
    assert row["value"] == 0.9 and row["verdict"] == "missed (no CI)"  # the CPU row does not count
    assert "cuda/N=4096" in row["measured"]


def _gf(folder: Path, model: str, seed: int, mse: float, budget: str | None = None) -> None:
    rec = {"model": model, "dataset": "ettm1", "horizon": 96, "seed": seed, "mse": mse}
    if budget is not None:
        rec["budget"] = budget
    ledger.append_records("gateformer", [rec], folder, render=False)


def test_headlines_fall_back_until_the_new_protocol_rows_exist(tmp_path):
    (headline,) = [h for h in rp.HEADLINES if h.table == "gateformer"]
    assert rp.headline_cell(headline, tmp_path) == "not regenerated yet (no ledger `gateformer`)"
    for seed in (0, 1, 2):  # old protocol: no budget column
        _gf(tmp_path, "gateformer", seed, 0.34 + seed / 100)
        _gf(tmp_path, "itransformer", seed, 0.41 + seed / 100)
    assert rp.headline_cell(headline, tmp_path).startswith("not regenerated yet: the ledger's 6 current rows")
    g = [0.339, 0.342, 0.336]
    it = [0.365, 0.361, 0.370]
    for seed in (0, 1):  # two seeds: no interval counts yet
        _gf(tmp_path, "gateformer", seed, g[seed], "equal steps 2560")
        _gf(tmp_path, "itransformer", seed, it[seed], "equal steps 2560")
    assert rp.headline_cell(headline, tmp_path).startswith("not regenerated yet")
    _gf(tmp_path, "gateformer", 2, g[2], "equal steps 2560")
    _gf(tmp_path, "itransformer", 2, it[2], "equal steps 2560")
    cell = rp.headline_cell(headline, tmp_path)
    res = paired_difference(g, it)
    assert f"Δ mse {res.mean:+.4g} [{res.lo:.4f}, {res.hi:.4f}], 3 pairs: gateformer better" in cell
    assert "equal steps 2560" in cell and "ettm1" in cell


def test_fairness_effect_resolves_budget_patterns(tmp_path):
    preset = "preset cpu: <= 2048 windows/epoch, <= 10 epochs"
    eq = [0.365, 0.362, 0.368]
    pre = [0.410, 0.402, 0.415]
    for seed in range(3):
        _gf(tmp_path, "itransformer", seed, eq[seed], "equal steps 2560")
        _gf(tmp_path, "itransformer", seed, pre[seed], preset)
    change = rp.FAIRNESS[0]
    (res,) = rp.evaluate(change.items[0], change.table, ledger.read_records("gateformer", tmp_path))
    assert res["pairs"] == 3 and res["diff"] == pytest.approx(statistics.fmean(a - b for a, b in zip(eq, pre)))
    assert res["verdict"] == "itransformer better" and res["comparison"] == "iTransformer: equal steps − preset"
    page = rp.render_fairness(tmp_path)
    assert "iTransformer: equal steps − preset" in page and "not measured yet (table not regenerated)" in page


def test_every_headline_and_effect_reads_a_result_from_the_committed_ledgers():
    """Every table has >= 3 paired seeds in its ledger, so no README line and no fairness effect may
    fall back to "not regenerated yet": a spec that names the wrong ledger or comparisons (the
    vl-gating line once evaluated the main table's empty declared comparisons) fails here."""
    res = ROOT / "docs" / "results"
    for h in rp.HEADLINES:
        cell = rp.headline_cell(h, res)
        assert not cell.startswith("not regenerated yet"), f"headline {h.table!r}: {cell}"
    for ch in rp.FAIRNESS:
        records = ledger.read_records(ch.ledger or ch.table, res)
        assert [r for item in ch.items for r in rp.evaluate(item, ch.table, records)], f"effect {ch.title!r}"


def test_vl_gating_headline_reads_the_last_layer_of_the_gates_ledger(tmp_path):
    (h,) = [h for h in rp.HEADLINES if h.table == "vl-gating"]
    assert h.ledger == "vl-gating-gates"
    gate = {"colour": [0.9, 0.8, 0.85], "punct": [0.5, 0.45, 0.55]}
    rows = [{"model": c, "dataset": "shapes", "split": split, "variant": "gate-scalar", "seed": s,
             "gate": v[s] - (0.3 if split == "mean" else 0.0)}
            for c, v in gate.items() for s in range(3) for split in ("last", "mean")]  # fmt: skip
    ledger.append_records("vl-gating-gates", rows, tmp_path, render=False)
    cell = rp.headline_cell(h, tmp_path)
    res = paired_difference(gate["colour"], gate["punct"])
    assert cell.startswith("gate: colour − punct, shapes, split last, variant gate-scalar: ")
    assert f"Δ gate {res.mean:+.4g} [{res.lo:.4f}, {res.hi:.4f}], 3 pairs: colour better" in cell
    assert "split mean" not in cell


def test_declared_without_comparisons_is_a_spec_error():
    with pytest.raises(ValueError, match="declares no such comparison"):
        rp.evaluate(rp.Declared(), "vl-audio", [])


def test_one_commit_check_names_the_mix():
    a = [{"source_hash": "aaaa", "commit": "c1", "date": "1"}, {"source_hash": "aaaa", "commit": "c2", "date": "2"}]
    b = [{"source_hash": "aaaa", "commit": "c3", "date": "3"}]
    chk = rp.one_commit({"t1": a, "t2": b})
    assert chk["one_source"] and chk["commits"] == ["c1", "c2", "c3"]
    assert rp._one_commit_lines({"t1": a, "t2": b}) == ["One commit: all tables from source aaaa (commits c1..c3)."]
    c = [{"source_hash": "bbbb-dirty", "commit": "c4", "date": "4"}, {"commit": "c0", "date": "0"}]
    chk = rp.one_commit({"t1": a, "t3": c})
    assert not chk["one_source"] and chk["unrecorded"] == ["t3"] and chk["dirty"] == ["t3"]
    (line,) = rp._one_commit_lines({"t1": a, "t3": c})
    assert "**not yet**" in line and "aaaa: t1" in line and "bbbb-dir: t3" in line
    # a table with no rows yet is named, and one source then does not hold
    chk = rp.one_commit({"t1": a, "t2": b, "t4": []})
    assert not chk["one_source"] and chk["missing"] == ["t4"]
    (line,) = rp._one_commit_lines({"t1": a, "t2": b, "t4": []})
    assert line == "One commit: **not yet** -- not every table has rows (commits c1..c3): aaaa: t1, t2; no rows yet: t4."
    # a table half regenerated: its rows per source are counted
    d = [{"source_hash": "cccc", "commit": "c5", "date": "5"}, *a[:1]]
    chk = rp.one_commit({"t1": d, "t2": b})
    assert chk["counts"] == {"t1": {"cccc": 1, "aaaa": 1}, "t2": {"aaaa": 1}}
    (line,) = rp._one_commit_lines({"t1": d, "t2": b})
    assert "cccc: t1 (1 of 2 rows); aaaa: t1 (1 of 2 rows), t2." in line


def test_the_one_commit_check_reads_the_side_ledgers():
    assert {"vl-gating-gates", "vl-gating-blimp", "vl-gating-words"} <= set(rp.side_ledgers())
    sources = rp.checked_sources(ROOT / "docs" / "results")
    assert set(rp.PAPER_TABLES) <= set(sources) and "vl-gating-gates" in sources


def test_check_fails_on_drift_and_write_fixes_it(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "README.md").write_text(f"# x\n\n{rp.BEGIN}\nold\n{rp.END}\n\nafter\n")
    # a paper table's rows and a speed ledger, from files that stay put while tables are regenerated
    # (a table's own ledger is absent between its deletion and its first new row)
    shutil.copy(ROOT / "docs" / "results" / "archive" / "tft.jsonl", tmp_path / "docs" / "results")
    shutil.copy(ROOT / "docs" / "results" / "recsys-speed.jsonl", tmp_path / "docs" / "results")
    diffs = rp.check(tmp_path)
    assert len(diffs) == 3  # README, speed.md, fairness.md
    assert rp.main(["--check", "--root", str(tmp_path)]) == 1
    assert rp.main(["--root", str(tmp_path)]) == 0
    assert rp.check(tmp_path) == []
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# x\n\n<!-- results:begin -->") and text.endswith("<!-- results:end -->\n\nafter\n")
    _speed(tmp_path / "docs" / "results", "gdcn-p", "train-epoch", 1.7, 1.6, 1.8, "2027-01-01T00:00:00+00:00")
    assert rp.main(["--check", "--root", str(tmp_path)]) == 1  # a new ledger row: the pages drift


def test_a_readme_without_markers_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="needs exactly one"):
        rp.replace_block("no markers\n", "block", tmp_path / "README.md")


def test_fairness_before_reads_the_archived_old_protocol_rows(tmp_path):
    (tmp_path / rp.ARCHIVE).mkdir()
    g, it = [0.34, 0.35, 0.33], [0.41, 0.43, 0.40]
    for seed in range(3):  # old protocol (no budget), moved aside into archive/
        _gf(tmp_path / rp.ARCHIVE, "gateformer", seed, g[seed])
        _gf(tmp_path / rp.ARCHIVE, "itransformer", seed, it[seed])
    page = rp.render_fairness(tmp_path)
    res = paired_difference(g, it)
    section = page.split("## Gateformer vs iTransformer")[1].split("\n## ")[0]
    assert "old protocol's rows, `archive/gateformer.jsonl`" in section
    assert f"Δ mse {res.mean:+.4g} [{res.lo:.4f}, {res.hi:.4f}], 3 pairs: gateformer better" in section
    tft = page.split("## TFT vs")[1].split("\n## ")[0]  # no archive for tft: the ledger (absent here)
    assert "still in the ledger" in tft and "no comparison with 2 or more paired seeds" in tft


def test_fairness_before_reads_a_named_archive(tmp_path, monkeypatch):
    (tmp_path / rp.ARCHIVE).mkdir()
    g, it = [0.34, 0.35, 0.33], [0.41, 0.43, 0.40]
    for seed in range(3):
        rec = [{"model": m, "dataset": "ettm1", "horizon": 96, "seed": seed, "mse": v[seed]}
               for m, v in (("gateformer", g), ("itransformer", it))]  # fmt: skip
        ledger.append_records("gateformer-old-code", rec, tmp_path / rp.ARCHIVE, render=False)
    change = rp.dataclasses.replace(rp.FAIRNESS[0], archived="gateformer-old-code")
    monkeypatch.setattr(rp, "FAIRNESS", (change,))
    section = rp.render_fairness(tmp_path).split("## Gateformer vs iTransformer")[1]
    res = paired_difference(g, it)
    assert "old protocol's rows, `archive/gateformer-old-code.jsonl`" in section
    assert f"Δ mse {res.mean:+.4g} [{res.lo:.4f}, {res.hi:.4f}], 3 pairs: gateformer better" in section


def _table_pages() -> list:
    """Every ledger a ``gatelab repro`` command renders, with the arguments it renders it with
    (``ReproTable.pages``: each table's own ledger, its quick ledger and its side ledgers)."""
    from gatelab.core.harness import repro

    pages = {n: kw for name in repro.list_tables() for n, kw in repro.get_table(name).pages().items()}
    return [pytest.param(name, kwargs, id=name) for name, kwargs in pages.items()]


@pytest.mark.parametrize("name, kwargs", _table_pages())
def test_table_pages_match_their_ledgers(name, kwargs, tmp_path):
    """A committed ``<table>.md`` is what its ledger renders to now: a ledger edited by hand (rows
    moved out) or a page left from older rendering code fails here, naming the page."""
    results = ROOT / "docs" / "results"
    if not (results / f"{name}.jsonl").exists():
        pytest.skip(f"{name}: no ledger committed")
    shutil.copy(results / f"{name}.jsonl", tmp_path)
    ledger.render_markdown(name, tmp_path, **kwargs)
    rendered = (tmp_path / f"{name}.md").read_text()
    committed = (results / f"{name}.md").read_text()
    assert rendered == committed, (
        f"docs/results/{name}.md differs from what docs/results/{name}.jsonl renders to; re-render it "
        f"(ledger.render_markdown) or rerun the command that writes it"
    )


def test_summarise_names_few_groups_by_the_keys_that_differ():
    def res(variant: str, dataset: str, budget: str, diff: float) -> dict:
        return {"comparison": "gate: a − b", "metric": "gate", "dataset": dataset, "variant": variant,
                "budget": budget, "pairs": 3, "diff": diff, "lo": diff - 0.1, "hi": diff + 0.1, "p": 0.01,
                "verdict": "a better"}  # fmt: skip

    rs = [res("scalar", "shapes", "b6", 0.4), res("vector", "shapes", "b6", 0.05), res("scalar", "coco", "b10", 0.2),
          res("x", "y", "z", 0.0)]  # fmt: skip
    text = rp.summarise([*rs[:3], {**rs[3], "comparison": "other"}])
    assert text.startswith("gate: a − b (gate): dataset shapes, variant scalar: +0.4 [0.3000, 0.5000], 3 pairs, a better; ")
    assert "dataset shapes, variant vector: +0.05" in text and "dataset coco, variant scalar: +0.2" in text
    assert "budget" not in text.split("; other")[0]  # the budget follows from the dataset here
    assert text.endswith("; other, y, variant x, budget z: Δ gate +0 [-0.1000, 0.1000], 3 pairs: a better")
