"""The --protocol flag of deepfl-train-mlp and deepfl-reproduce: the paper's stage-2 protocol (default) or the
authors' demo notebook's; flags given explicitly (--learning_rates, --epochs, ...) override the protocol's value."""

from __future__ import annotations

from absl import flags

from deepfl import paper
from deepfl.cli import app

FLAGS = flags.FLAGS
TUNABLE = ("learning_rates", "epochs", "batch_size", "num_splits")


def require_positive_learning_rates() -> None:
    """--learning_rates (defined by the script first) refused when the flags are parsed unless every item is a
    positive number."""
    app.require_numbers("learning_rates", "positive numbers such as 1e-3,1e-4", lambda lr: lr > 0)


def define_protocol_flag() -> None:
    flags.DEFINE_enum(
        "protocol",
        "paper",
        list(paper.STAGE2_PROTOCOLS),
        "Stage-2 protocol: 'paper' (z-scored "
        "targets, lr chosen on validation among --learning_rates, 10 splits) or 'authors_demo' (the "
        "authors' demo notebook: fixed lr 1e-3, raw published scores as targets, 5 splits, batch 128, "
        "30 epochs). Explicit --learning_rates/--epochs/--batch_size/--num_splits override it.",
    )


def protocol_choice() -> dict:
    """The protocol's settings (`deepfl.protocol_records.protocol_settings`) with the explicitly given flags applied."""
    from deepfl.protocol_records import protocol_settings

    settings = protocol_settings(FLAGS.protocol)
    for name in TUNABLE:
        if FLAGS[name].present:
            value = FLAGS[name].value
            settings[name] = [float(v) for v in value] if name == "learning_rates" else value
    settings["learning_rates"] = [float(v) for v in settings["learning_rates"]]
    return settings


def changed_settings(chosen: dict) -> list[str]:
    """The protocol settings that `chosen` (`protocol_choice()`) takes from flags instead of the protocol, as
    "epochs=2" or "learning_rates=0.001,0.0001": results made with them are not the protocol's."""
    from deepfl.protocol_records import protocol_settings

    standard = protocol_settings(FLAGS.protocol)
    changed = []
    for name in TUNABLE:
        if chosen[name] != standard[name]:
            value = chosen[name]
            shown = ",".join(f"{v:g}" for v in value) if isinstance(value, list) else str(value)
            changed.append(f"{name}={shown}")
    return changed
