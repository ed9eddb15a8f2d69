"""``concord audit reviews``: the supervisors' approvals and overrides from the audit trail, as a
table of labels (recommended action, chosen action, reason) for evaluating and retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import console, fail


def reviews_command(
    out: Annotated[Path, typer.Option(help="CSV file to write (UTF-8, readable by its owner only)")],
) -> None:
    """Write every approve and override recorded from the review page to OUT, oldest first."""
    import pandas as pd

    from concord.audit import audit_engine
    from concord.outputs import write_csv
    from concord.settings import get_settings
    from serving.review.store import LABEL_COLUMNS, review_labels

    if out.suffix.lower() != ".csv":
        fail(f"--out must name a .csv file, not {out.name}.")
    engine = audit_engine(get_settings())
    try:
        rows = review_labels(engine)
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    write_csv(frame, out)
    overridden = int((frame["verdict"] == "override").sum()) if len(frame) else 0
    console.print(f"{len(frame):,} reviews ({overridden:,} overrides) written to {out}", highlight=False)
