"""Render docs/benchmarks.md from the JSON files in benchmarks/results/.

Every number in the generated sections comes from those files. A benchmark without a file
is listed as not run, and one whose run failed shows its error. The hand-written
benchmarks/notes.md, when present, is appended as the last section.

    python benchmarks/render.py [--results-dir DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# Hand-written analysis of the results, appended to the generated page.
NOTES = REPO_ROOT / "benchmarks" / "notes.md"
ORDER = ("lm_eval", "mteb", "classifier", "cache", "memory", "scaling")
TITLES = {
    "lm_eval": "Against lm-evaluation-harness: gemma-3-270m, AFQMC dev",
    "mteb": "Against MTEB: m3e-small, AFQMC dev STS",
    "classifier": "Against a bare model loop and padding to 128 tokens",
    "cache": "Rerun with the prediction cache",
    "memory": "Peak memory under pytest-xdist",
    "scaling": "Scaling with the number of examples",
}


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def runs_list(runs: list[dict[str, Any]], key: str = "wall_seconds") -> str:
    return ", ".join(f"{run[key]:.2f}" for run in runs)


def render_lm_eval(result: dict[str, Any]) -> list[str]:
    medians = result["median_wall_seconds"]
    choices = result["choices"]
    lines = [
        f"{result['examples']} first rows of AFQMC dev, zero-shot, float32 on the CPU, model folder "
        f"`{result['model_dir']}`, verbalizers {' / '.join(result['verbalizers'])}, lm-eval batch size "
        f"{result['lm_eval_batch_size']}. Wall time of each whole command:",
        "",
        "| program | median | runs (s) |",
        "|---|---|---|",
        f"| harness (`pytest`) | {seconds(medians['harness'])} | {runs_list(result['runs']['harness'])} |",
        f"| lm-eval (`lm_eval run`) | {seconds(medians['lm_eval'])} | {runs_list(result['runs']['lm_eval'])} |",
        "",
        f"- harness / lm-eval: **{result['harness_over_lm_eval']:.3f}** (target ≤ "
        f"{result['target_harness_over_lm_eval']}: {verdict(result['meets_time_target'])})",
        f"- identical choices: **{choices['identical_share']:.2%}** of {choices['compared']} "
        f"(target 100%: {verdict(result['meets_choice_target'])}); largest difference of the "
        f"margins log P(相同) − log P(不同) between the two programs: "
        f"{choices['max_abs_margin_difference']:.2e}, median {choices['median_abs_margin_difference']:.2e}",
        f"- harness accuracy {result['harness_accuracy']:.4f}",
    ]
    if choices["differing"]:
        lines += [
            "",
            "| id | harness choice | harness margin | lm-eval choice | lm-eval margin |",
            "|---|---|---|---|---|",
        ]
        for row in choices["differing"]:
            lines.append(
                f"| {row['id']} | {row['harness_choice']} | {row['harness_margin']:.6f} | "
                f"{row['lm_eval_choice']} | {row['lm_eval_margin']:.6f} |"
            )
    lines += ["", *render_efficiency(result["forward_pass_efficiency"])]
    return lines


def render_efficiency(facts: dict[str, Any]) -> list[str]:
    return [
        "Distance from the CPU's peak (an estimate): FLOPs per token are 2 × the parameters of the "
        "matmuls a token passes through, attention scores left out. The harness runs each prompt "
        "once and projects onto the vocabulary at its last position only; lm-eval's Hugging Face "
        "model projects every position.",
        "",
        f"- torch float32 matmul (2048², {facts['torch_threads']} threads, best of 10): "
        f"{facts['matmul_gflops_measured']:.1f} GFLOP/s",
        f"- model: {facts['parameters'] / 1e6:.1f} M parameters, {facts['non_embedding_parameters'] / 1e6:.1f} M "
        f"outside the embedding; {facts['context_tokens']} prompt tokens in all, choices of "
        f"{facts['choice_tokens']} tokens",
        f"- harness: {facts['harness_gflop']:.1f} GFLOP in {seconds(facts['harness_seconds_in_forward_passes'])} "
        f"of scoring = {facts['harness_gflops_achieved']:.1f} GFLOP/s, "
        f"{facts['harness_share_of_matmul_peak']:.0%} of the matmul rate",
        f"- lm-eval: {facts['lm_eval_gflop']:.1f} GFLOP in {seconds(facts['lm_eval_wall_seconds'])} of "
        f"whole-command wall time = at least {facts['lm_eval_gflops_achieved_lower_bound']:.1f} GFLOP/s, "
        f"at least {facts['lm_eval_share_of_matmul_peak_lower_bound']:.0%} of the matmul rate",
    ]


def render_mteb(result: dict[str, Any]) -> list[str]:
    medians = result["median_wall_seconds"]
    return [
        f"{result['pairs']} AFQMC dev pairs, model folder `{result['model_dir']}`. Wall time of each "
        "whole command:",
        "",
        "| program | median | runs (s) | Spearman |",
        "|---|---|---|---|",
        f"| harness (`pytest`, similarity-sts) | {seconds(medians['harness'])} | "
        f"{runs_list(result['runs']['harness'])} | {result['harness_spearman']:.10f} |",
        f"| MTEB (`mteb.evaluate`, AFQMC STS) | {seconds(medians['mteb'])} | "
        f"{runs_list(result['runs']['mteb'])} | {result['mteb_spearman']:.10f} |",
        "",
        f"- harness / MTEB wall time: {result['harness_over_mteb']:.3f}",
        f"- |Spearman difference|: **{result['abs_spearman_difference']:.2e}** (target ≤ "
        f"{result['target_abs_spearman_difference']:.0e}: {verdict(result['meets_spearman_target'])})",
    ]


def render_classifier(result: dict[str, Any]) -> list[str]:
    medians = result["median_seconds"]
    timings = result["timings_seconds"]
    lines = [
        f"{result['examples']} AFQMC dev pairs, `{result.get('machine', '')}`, timed inside one "
        f"process (model load {seconds(result['model_load_seconds'])}, not timed). Accuracy "
        f"{result['accuracy']:.4f}.",
        "",
        "| loop | median | runs (s) |",
        "|---|---|---|",
    ]
    for name, value in medians.items():
        lines.append(
            f"| {name} | {seconds(value)} | {', '.join(f'{t:.2f}' for t in timings[name])} |"
        )
    lines += [
        "",
        f"- harness / bare loop: **{result['harness_over_bare']:.3f}** (target ≤ "
        f"{result['target_harness_over_bare']}: {verdict(result['meets_bare_target'])})",
        f"- pad to 128 / harness: **{result['pad128_over_harness']:.2f}** (target ≥ "
        f"{result['target_pad128_over_harness']}: {verdict(result['meets_pad128_target'])})",
    ]
    return lines


def render_cache(result: dict[str, Any]) -> list[str]:
    medians = result["median_wall_seconds"]
    cached = [run.get("requests_from_cache") for run in result["runs"]["rerun"]]
    return [
        f"Suite: {result['suite']}"
        + (f", smoke size {result['smoke_size']}" if result.get("smoke_size") else "")
        + ". Each round starts with a new empty cache folder.",
        "",
        "| run | median | runs (s) |",
        "|---|---|---|",
        f"| first run | {seconds(medians['first_run'])} | {runs_list(result['runs']['first_run'])} |",
        f"| rerun | {seconds(medians['rerun'])} | {runs_list(result['runs']['rerun'])} |",
        "",
        f"- first run / rerun: **{result['first_over_rerun']:.1f}×** (target ≥ "
        f"{result['target_first_over_rerun']:.0f}×: {verdict(result['meets_target'])})",
        f"- requests served from the cache in each rerun: {', '.join(str(value) for value in cached)}",
        *render_before(result),
    ]


def render_before(result: dict[str, Any]) -> list[str]:
    """Render the medians recorded before a change to the harness, when the result keeps them."""
    before = result.get("before")
    if not before:
        return []
    medians = before["median_wall_seconds"]
    return [
        f"- before {before['change']}: first run {seconds(medians['first_run'])}, rerun "
        f"{seconds(medians['rerun'])}, **{before['first_over_rerun']:.1f}×**",
    ]


def render_memory(result: dict[str, Any]) -> list[str]:
    medians = result["medians"]
    names = {
        "n0": "`-n 0`",
        "n_auto": "`-n auto`",
        "n_auto_group_models": "`-n auto --clue-group-models`",
    }
    lines = [
        f"Suite: {result['suite']}"
        + (f", smoke size {result['smoke_size']}" if result.get("smoke_size") else "")
        + ". Peaks of the whole process tree, sampled every 0.2 s. PSS counts pages that "
        "processes share (memory-mapped weights) once.",
        "",
        "| layout | peak PSS | peak RSS | wall | PSS / `-n 0` | RSS / `-n 0` |",
        "|---|---|---|---|---|---|",
    ]
    for layout, label in names.items():
        ratio = result["ratios"].get(layout)
        pss_ratio = f"{ratio['pss_over_n0']:.2f}" if ratio else "1"
        rss_ratio = f"{ratio['rss_over_n0']:.2f}" if ratio else "1"
        lines.append(
            f"| {label} | {medians[layout]['peak_pss_mib']:.0f} MiB | {medians[layout]['peak_rss_mib']:.0f} MiB | "
            f"{seconds(medians[layout]['wall_seconds'])} | {pss_ratio} | {rss_ratio} |"
        )
    lines += [
        "",
        f"- `-n auto`: PSS ratio {result['ratios']['n_auto']['pss_over_n0']:.2f} (target ≤ "
        f"{result['target_pss_over_n0']}: {verdict(result['meets_target_n_auto'])})",
        f"- `-n auto --clue-group-models`: PSS ratio "
        f"{result['ratios']['n_auto_group_models']['pss_over_n0']:.2f} (target ≤ "
        f"{result['target_pss_over_n0']}: {verdict(result['meets_target_n_auto_group_models'])})",
        "",
        "Under xdist's default `load` distribution every worker that receives a case loads the "
        "model. `--clue-group-models` makes the plugin schedule all cases of one model on one "
        "worker: one copy of the weights per model, and models still run in parallel with each "
        "other, but the cases of one model run one after another. Workers beyond the number of "
        "models are shut down, and the remaining ones split the cores among themselves.",
        "",
        "`--dist loadgroup` with the `xdist_group` marks that the plugin also sets would group the "
        "same way, but pytest-xdist 3.8.0 under pytest 9 ignores the marks: it appends the group "
        "to `item._nodeid`, which pytest 9 no longer reads.",
    ]
    return lines


def render_scaling(result: dict[str, Any]) -> list[str]:
    lines = [
        f"Whole `pytest` command, fine-tuned classifier `{result['model']}`, first n rows of AFQMC dev.",
        "",
        "| examples | median | runs (s) | (t − start-up) / n |",
        "|---|---|---|---|",
    ]
    per_example = result["seconds_per_example_after_startup"]
    for (label, value), size, each in zip(
        result["median_wall_seconds"].items(), result["sizes"], per_example
    ):
        lines.append(
            f"| {size} | {seconds(value)} | {runs_list(result['runs'][label])} | {each * 1e3:.3f} ms |"
        )
    marginal = ", ".join(
        f"{value * 1e3:.3f} ms" for value in result["marginal_seconds_per_example"]
    )
    lines += [
        "",
        f"- least-squares fit: start-up {seconds(result['fitted_startup_seconds'])}, "
        f"{result['fitted_seconds_per_example'] * 1e3:.3f} ms per example",
        f"- marginal wall time per example, 1×→4× and 4×→16×: {marginal}; spread "
        f"{result['marginal_spread']:.1%}",
    ]
    if "eval_seconds_per_example" in result:
        each = ", ".join(f"{value * 1e3:.3f} ms" for value in result["eval_seconds_per_example"])
        lines.append(
            f"- the case's own evaluation time per example (no start-up, no model load) at "
            f"1×, 4×, 16×: {each}; spread {result['eval_spread']:.1%} (linear within "
            f"{result['linearity_tolerance']:.0%}: "
            f"{'yes' if result['linear_within_tolerance'] else '**no**'})"
        )
    return lines


RENDERERS = {
    "lm_eval": render_lm_eval,
    "mteb": render_mteb,
    "classifier": render_classifier,
    "cache": render_cache,
    "memory": render_memory,
    "scaling": render_scaling,
}


def render_machine(machine: dict[str, Any]) -> list[str]:
    return [
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
        f"({machine['physical_cores']} physical), {machine['ram_gib']} GiB RAM; {machine['os']}",
        f"- harness venv: Python {machine['python']}, torch {machine['torch']}, transformers "
        f"{machine['transformers']}, clue-harness {machine['clue_harness']}, pytest-xdist "
        f"{machine['pytest_xdist']}; commit {machine['git_commit']}",
        f"- lm-eval venv: lm_eval {machine['lm_eval']}, torch {machine['lm_eval_torch']}, "
        f"transformers {machine['lm_eval_transformers']}",
        f"- MTEB venv: mteb {machine['mteb']}, sentence-transformers {machine['sentence_transformers']}, "
        f"torch {machine['mteb_torch']}",
        f"- load average when the suite started: {', '.join(f'{value:.2f}' for value in machine['load_average_at_start'])}",
    ]


def render_commands(result: dict[str, Any]) -> list[str]:
    commands = result.get("commands")
    if commands is None and "command" in result:
        commands = {"benchmark": result["command"]}
    if not commands:
        return []
    lines = ["", "Commands:", ""]
    for name, command in commands.items():
        lines += [f"- {name}:", "", "  ```bash", f"  {command}", "  ```"]
    return lines


def render(results: dict[str, dict[str, Any]]) -> str:
    first = next(iter(results.values()), None)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/render.py` from `benchmarks/results/*.json`; do not edit by hand.",
        "Every figure is the median of the recorded runs; each comparison ran its programs on the "
        "same data and model in one suite run, alternating A, B, A, B after one warm-up round.",
        "",
    ]
    if first is not None:
        lines += [
            "Measured with:",
            "",
            "```bash",
            first["suite_command"],
            "```",
            "",
            f"{first['repeats']} recorded runs per program.",
            "",
            *render_machine(first["machine"]),
        ]
    for name in ORDER:
        lines += ["", f"## {TITLES[name]}", ""]
        payload = results.get(name)
        if payload is None:
            lines.append("Not run.")
            continue
        if "error" in payload:
            lines.append(f"The run failed: `{payload['error']}`")
            continue
        lines += RENDERERS[name](payload["result"])
        lines += render_commands(payload["result"])
        lines += [
            "",
            f"Started {payload['started']}, took {payload['suite_seconds']:.0f} s in all.",
        ]
    if NOTES.is_file():
        lines += ["", NOTES.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    results = {}
    for name in ORDER:
        path = args.results_dir / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    if not results:
        raise SystemExit(
            f"no benchmark results in {args.results_dir}; run benchmarks/run_all.py first"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
