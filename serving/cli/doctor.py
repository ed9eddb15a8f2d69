"""``concord doctor``: where personal data lives, and whether only its owner can read it.

Lists every place Concord keeps personal data (or the key that protects it) and checks the
mode of every file and folder under ``CONCORD_HOME``: exit 1 naming each one others may read,
with the command that fixes it.
"""

from __future__ import annotations

from serving.cli.common import console, errors

SHOWN_PROBLEMS = 20  # files named one by one; the rest are counted


def doctor_command() -> None:
    """List where personal data lives and check that only its owner can read it (exit 1 if not)."""
    import typer

    from concord.at_rest import check_modes, personal_data_places
    from concord.settings import get_settings

    settings = get_settings()
    console.print("Personal data and what protects it:", highlight=False)
    for place in personal_data_places(settings):
        state = "" if place.path is None or place.path.exists() else " (not created yet)"
        console.print(f"  {place.what}: {place.where}{state}\n    holds {place.holds}", highlight=False, soft_wrap=True)
    checked, problems = check_modes(settings)
    if not problems:
        console.print(
            f"Modes: all {checked:,} files and folders under {settings.home} are readable by their owner only.",
            highlight=False,
            soft_wrap=True,
        )
        return
    for problem in problems[:SHOWN_PROBLEMS]:
        errors.print(problem.sentence(), highlight=False, soft_wrap=True)
    if len(problems) > SHOWN_PROBLEMS:
        errors.print(f"... and {len(problems) - SHOWN_PROBLEMS:,} more.", highlight=False)
    errors.print(
        f"{len(problems):,} of {checked:,} files and folders under {settings.home} are readable by others "
        f"than their owner: run chmod -R go-rwx '{settings.home}' to fix them all.",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)
