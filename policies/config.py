"""Loading a policy: the YAML files of a policy folder, validated, as one versioned :class:`Policy`.

The packaged folder (``policies/``) holds the shipped policy; ``load_policy(path)`` reads another.
Files: ``policy.yaml`` (declared version, which workflow files and which workflow per creditor or
court), ``catalogue.yaml``, the workflow files, ``guardrails.yaml``, ``effects.yaml``,
``claims.yaml``, ``offers.yaml``, ``court.yaml``, ``assignment.yaml``, and optionally
``exploration.yaml`` (without it, no recommendation is explored). Any bad key is refused with
one sentence naming the file and the key's path. The policy version is the declared version plus
the first 12 hex digits of the SHA-256 of every file read, so two different contents never share
a version. Load once (at start, in the service) and reuse: loading reads and checks every file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from policies.action_value import Effects, parse_effects
from policies.assignment import AssignmentRules, parse_assignment
from policies.catalogue import Catalogue, parse_catalogue
from policies.claims import ClaimRules, parse_claims
from policies.court import CourtRules, parse_court
from policies.exploration import Exploration, parse_exploration
from policies.facts import known_facts
from policies.guardrails import Guardrails, parse_guardrails
from policies.offers import OfferRules, parse_offers
from policies.schema import Node, PolicyError, read_yaml
from policies.workflows import Workflow, WorkflowChoice, check_unique, parse_choice, parse_workflow

PACKAGED = Path(__file__).resolve().parent
SECTIONS = ("catalogue", "guardrails", "effects", "claims", "offers", "court", "assignment")


@dataclass(frozen=True)
class Policy:
    """Everything the engine decides by, and the version that identifies it."""

    version: str  # "<declared>+<sha256 of the files, 12 hex digits>"
    declared_version: str
    directory: Path
    catalogue: Catalogue
    workflows: dict[str, Workflow]
    choice: WorkflowChoice
    guardrails: Guardrails
    effects: Effects
    claims: ClaimRules
    offers: OfferRules
    court: CourtRules
    assignment: AssignmentRules
    exploration: Exploration = Exploration()

    def with_workflow(self, name: str) -> Policy:
        """The same policy with every case on workflow ``name``."""
        if name not in self.workflows:
            raise PolicyError(f"unknown workflow '{name}' (this policy has {', '.join(self.workflows)}).")
        from dataclasses import replace

        return replace(self, choice=WorkflowChoice(default=name))

    def with_exploration(self, exploration: Exploration) -> Policy:
        """The same policy with other exploration settings (the version says so)."""
        from dataclasses import replace

        shares = ",".join(f"{k}={v}" for k, v in sorted(exploration.by_creditor.items()))
        return replace(
            self,
            exploration=exploration,
            version=f"{self.version}+explore-{exploration.epsilon}{'-' + shares if shares else ''}",
        )


def _label(directory: Path, name: str) -> str:
    return f"policies/{name}" if directory == PACKAGED else str(directory / name)


def load_policy(directory: Path | None = None) -> Policy:
    """Read and check the policy in ``directory`` (default: the packaged one).

    Raises:
        PolicyError: a file is missing or not YAML, a key is unknown or has a bad value, a name is
            not in the catalogue, or a workflow's transitions form a cycle (one sentence).
    """
    directory = (directory or PACKAGED).resolve()
    if not directory.is_dir():
        raise PolicyError(f"{directory}: is not a policy folder.")
    digest = hashlib.sha256()
    nodes: dict[str, Node] = {}

    def read(name: str) -> Node:
        path = directory / name
        node = read_yaml(path, _label(directory, name))
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return node

    root = read("policy.yaml")
    top = root.mapping(allowed=("version", "name", "description", "workflows"), required=("version", "workflows"))
    for section in SECTIONS:
        nodes[section] = read(f"{section}.yaml")
    catalogue = parse_catalogue(nodes["catalogue"])
    known = known_facts(catalogue.channels, catalogue.names)
    files = top["workflows"].mapping(allowed=("files", "default", "by_creditor", "by_court"))
    if "files" not in files:
        raise top["workflows"].fail("the key 'files' is required")
    workflows = check_unique(
        [parse_workflow(read(name), catalogue, known) for name in files["files"].names(what="workflow file")], root
    )
    return Policy(
        version=f"{top['version'].value}+{digest.hexdigest()[:12]}",
        declared_version=str(top["version"].value),
        directory=directory,
        catalogue=catalogue,
        workflows=workflows,
        choice=parse_choice(top["workflows"], workflows),
        guardrails=parse_guardrails(nodes["guardrails"], catalogue),
        effects=parse_effects(nodes["effects"], catalogue, known),
        claims=parse_claims(nodes["claims"]),
        offers=parse_offers(nodes["offers"]),
        court=parse_court(nodes["court"], catalogue, known),
        assignment=parse_assignment(nodes["assignment"]),
        exploration=(
            parse_exploration(read("exploration.yaml"), catalogue)
            if (directory / "exploration.yaml").exists()
            else Exploration()
        ),
    )
