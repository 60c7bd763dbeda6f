"""The shipped checkpoints and the chapters stay consistent with the recipes that produce them.

When the quick preset changes (its loss, schedule or network), the scripts that retrain the shipped checkpoints
must still reproduce the configs recorded with them, and a chapter must sample a network it trains with the
schedule that network was trained on.
"""
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_helpers import bench_module  # noqa: E402
from dnnl.models.ddpm import TrainConfig  # noqa: E402

train_conditional = bench_module("train_conditional")
train_pretrained = bench_module("train_pretrained")

WEIGHTS = REPO / "dnnl" / "models" / "ddpm" / "weights"
# fields that say where a run writes, what it starts from or how often it reports, not how it trains
BOOKKEEPING = {"preset", "out_dir", "data_root", "init_from", "log_every", "checkpoint_every", "sample_every",
               "sample_steps", "num_workers"}


def _training(config: TrainConfig | dict) -> dict:
    """A config's training fields; a recorded dict gets the defaults of fields added after it was saved."""
    config = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    return {k: v for k, v in config.to_dict().items() if k not in BOOKKEEPING}


def _record(name: str) -> dict:
    return json.loads((WEIGHTS / f"{name}.json").read_text())


def test_train_pretrained_reruns_the_shipped_recipe():
    record = _record("ddpm_mnist_quick")
    args = train_pretrained.parse_args(["--steps", str(record["steps"]), "--seed", str(record["seed"]),
                                        "--batch-size", str(record["config"]["batch_size"])])
    ours, shipped = _training(train_pretrained.config_for(args)), _training(record["config"])
    assert ours == shipped, {k: (ours[k], shipped[k]) for k in ours if ours[k] != shipped[k]}


def test_train_conditional_reruns_the_shipped_recipe():
    record = _record("ddpm_mnist_cond")
    config = record["config"]
    args = train_conditional.parse_args(["--steps", str(config["steps"]), "--out", config["out_dir"],
                                         "--init-from", config["init_from"]])
    ours, shipped = _training(train_conditional.config_for(args)), _training(config)
    assert ours == shipped, {k: (ours[k], shipped[k]) for k in ours if ours[k] != shipped[k]}


def test_conditional_fine_tune_keeps_the_schedule_and_network_of_the_model_it_starts_from():
    config = train_conditional.config_for(train_conditional.parse_args([]))
    start = _record("ddpm_mnist_quick")["config"]
    keys = ("schedule", "T", "attention", "channels", "num_res_blocks")
    assert {k: config.to_dict()[k] for k in keys} == {k: TrainConfig(**start).to_dict()[k] for k in keys}


def test_chapters_sample_their_own_runs_with_the_schedule_they_trained_on():
    # ddpm.sample(result.ema_model, <schedule>, ...): a network trained in the chapter by train()
    calls = []
    for qmd in sorted((REPO / "book").glob("*.qmd")):
        for m in re.finditer(r"ddpm\.sample\(\s*result\.\w+,\s*([^,]+),", qmd.read_text()):
            calls.append((qmd.name, m.group(1).strip()))
    assert calls, "chapter 4 samples the network it trains"
    wrong = [(name, arg) for name, arg in calls if not arg.endswith(".build_schedule()")]
    assert not wrong, f"sample a trained run with its config's build_schedule(), not {wrong}"

