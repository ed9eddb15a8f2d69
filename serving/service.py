"""The next-best-action service (BentoML): typed endpoints for mediation platforms, courts,
supervisors, data scientists and admins; ``bentofile.yaml`` names ``serving.service:NextBestAction``.

Thin by design: the gate (``serving.gate``) checks keys, roles and sizes; each endpoint finds its
answer in ``serving.recommend`` or ``serving.casework`` and turns a refusal into its status and
one sentence. ``/healthz``, ``/livez``, ``/readyz`` (false until the champions are loaded) and
``/metrics`` (Prometheus) are BentoML's. Start it with ``concord serve``, which migrates first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import bentoml
from starlette.responses import JSONResponse, Response

from serving import probe, spread
from serving.cases import ApiError
from serving.gate import ROUTES, Gate
from serving.review.app import create_app as create_review_app
from serving.schemas import (
    BATCH_LIMIT,
    AssignRequest,
    AssignResponse,
    CaseRef,
    CaseRequest,
    DecisionStatusRequest,
    DecisionStatusResponse,
    EventIn,
    EventsRequest,
    EventsResponse,
    ExplainResponse,
    LitigationListRequest,
    LitigationListResponse,
    NextBestActionRequest,
    NextBestActionResponse,
    ProfileResponse,
    ReloadRequest,
    ReloadResponse,
)

log = logging.getLogger("concord.service")
review_page = create_review_app()  # the supervisor's page at /review/ (no I/O until a request comes)


def _refusal(ctx: bentoml.Context, status: int, message: str, field: str | None = None) -> Any:
    """A refusal with our error body (typed Any: endpoints return it in place of their model)."""
    ctx.response.status_code = status
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _batch(ctx: bentoml.Context, items: list[Any] | None, field: str) -> Any:
    if items is not None and len(items) > BATCH_LIMIT:
        return _refusal(
            ctx, 413, f"'{field}' holds {len(items):,} items; send at most {BATCH_LIMIT:,} at a time", field
        )
    return None


# No OpenTelemetry spans for our endpoints: no exporter is configured, and BentoML's tracing
# middleware cost about an eighth of a worker's CPU per one-case request (to trace them, configure
# an exporter and remove the exclusion). Prometheus metrics stay.
@bentoml.service(
    name="concord",
    workers=1,
    threads=4,
    traffic={"timeout": 120},
    tracing={"excluded_urls": [route.lstrip("/") for route in ROUTES]},
)
@bentoml.asgi_app(review_page, path="/review")
class NextBestAction:
    """Concord: what to do next for a debt case, who works it, and what a court should see."""

    def __init__(self) -> None:
        from concord.at_rest import restrict_new_files
        from concord.settings import get_settings
        from serving.gate import quiet_validation_logs
        from serving.runtime import Runtime, set_current

        probe.start()  # only when CONCORD_PROBE_DIR is set (benchmarks)
        quiet_validation_logs()
        restrict_new_files()  # the audit store, the xlsx scratch files: owner only
        self.runtime = Runtime(get_settings()).start()
        set_current(self.runtime)
        self._attach_review_page()
        self.runtime.run_background()

    def _attach_review_page(self) -> None:
        """Give the mounted review page this worker's engines, policy and feature store (a mounted
        app's own start-up hooks are not to be relied on)."""
        from serving.review.context import ReviewContext

        rt = self.runtime
        policy = rt.policy_engine.policy if rt.policy_engine is not None else None
        review_page.state.review.context = ReviewContext(
            rt.settings, ledger=rt.ledger, audit=rt.audit, policy=policy, feature_store=rt.store
        )

    @bentoml.on_startup
    def _bind_api_methods(self) -> None:
        """Keep each API method's local caller on the instance. BentoML looks the method up on the
        instance for every request, and its descriptor (a non-data one) builds a new wrapper each
        time, ``inspect.signature`` included: about a tenth of the event loop's CPU per one-case
        request. Found in the instance's ``__dict__``, the first wrapper serves every request (its
        ``local`` is the same caller BentoML would build; only the endpoint's ``.local`` is used)."""
        from _bentoml_sdk.method import APIMethod

        for name, member in vars(type(self)).items():
            if isinstance(member, APIMethod):
                vars(self)[name] = member.__get__(self, type(self))

    def __is_ready__(self) -> bool:
        return self.runtime.ready()

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.runtime.stop()

    def _answer(self, ctx: bentoml.Context, work: Callable[[Any], Any]) -> Any:
        """Run ``work(principal)``; a refusal becomes its status and sentence, never a 500."""
        from sqlalchemy.exc import OperationalError

        from serving.runtime import NotReady

        principal = ctx.request.state.principal
        try:
            result = work(principal)
        except ApiError as error:
            return _refusal(ctx, error.status, error.message, error.field)
        except NotReady as error:
            return _refusal(ctx, 503, str(error))
        except OperationalError as error:  # the database is away or locked past its timeout
            log.error("database unavailable: %s", type(error.orig).__name__)
            return _refusal(ctx, 503, "the database is unavailable or busy; try again shortly")
        ctx.response.status_code = 200
        return result

    @bentoml.api(route="/next_best_action", input_spec=NextBestActionRequest)
    def next_best_action(
        self,
        ctx: bentoml.Context,
        case_id: str | None = None,
        creditor: str | None = None,
        cases: list[CaseRef] | None = None,
    ) -> NextBestActionResponse:
        """The next best action for one case (`case_id`, plus `creditor` when the key serves several
        creditors) or for a batch of up to 1,000 (`cases`). Sensitive actions come back with
        `approval: pending` until a supervisor approves them."""
        from serving.recommend import recommend_batch, recommend_one

        if (case_id is None) == (cases is None):
            return _refusal(
                ctx,
                400,
                "give either 'case_id' (one case) or 'cases' (a batch), not both or neither",
                "case_id" if case_id is None else "cases",
            )
        if (too_many := _batch(ctx, cases, "cases")) is not None:
            return too_many
        if cases is not None:
            if not cases:
                return _refusal(ctx, 400, "'cases' is empty: name at least one case", "cases")

            def batch(principal: Any) -> NextBestActionResponse:
                results, errors = recommend_batch(self.runtime, principal, cases)
                return NextBestActionResponse(results=results, errors=errors)

            return self._answer(ctx, batch)
        assert case_id is not None
        return self._answer(
            ctx,
            lambda p: NextBestActionResponse(results=[recommend_one(self.runtime, p, case_id, creditor)], errors=[]),
        )

    @bentoml.api(route="/assign", input_spec=AssignRequest)
    def assign(self, ctx: bentoml.Context, cases: list[CaseRef], save: bool = False) -> AssignResponse:
        """Assign a batch of open cases (up to 1,000) to the available mediators for the best
        expected recovery within their capacity and fit; `save` records it in the ledger."""
        from serving.casework import assign_cases

        if (too_many := _batch(ctx, cases, "cases")) is not None:
            return too_many
        return self._answer(ctx, lambda p: assign_cases(self.runtime, p, cases, save))

    @bentoml.api(route="/explain", input_spec=CaseRequest)
    def explain(self, ctx: bentoml.Context, case_id: str, creditor: str | None = None) -> ExplainResponse:
        """Every feature's contribution (log-odds, SHAP values) to both models' scores for one case,
        with the feature values."""
        from serving.casework import explain

        return self._answer(ctx, lambda p: explain(self.runtime, p, case_id, creditor))

    @bentoml.api(route="/profile", input_spec=CaseRequest)
    def profile(self, ctx: bentoml.Context, case_id: str, creditor: str | None = None) -> ProfileResponse:
        """The debtor profile (画像) of a case: reachability, capacity, litigation, recent events;
        identifiers masked, no name."""
        from serving.casework import profile

        return self._answer(ctx, lambda p: profile(self.runtime, p, case_id, creditor))

    @bentoml.api(route="/litigation_list", input_spec=LitigationListRequest)
    def litigation_list(
        self, ctx: bentoml.Context, court: str | None = None, format: Literal["json", "xlsx"] = "json"
    ) -> LitigationListResponse:
        """A court's list of cases proposed for filing, payment order or pre-check write-off, with
        risk flags and claims computed (JSON, or an xlsx workbook with `format: xlsx`). A court key
        reads its own court's list."""
        from serving.casework import XLSX, litigation_json, litigation_sheets, litigation_xlsx

        def work(principal: Any) -> Any:
            name, sheets = litigation_sheets(self.runtime, principal, court)
            if format == "json":
                return litigation_json(self.runtime, name, sheets)
            return Response(
                litigation_xlsx(self.runtime, sheets),
                media_type=XLSX,
                headers={"content-disposition": 'attachment; filename="litigation-list.xlsx"'},
            )

        return self._answer(ctx, work)

    @bentoml.api(route="/events", input_spec=EventsRequest)
    def events(self, ctx: bentoml.Context, events: list[EventIn]) -> EventsResponse:
        """What the platform did and what happened (up to 1,000 events): written to the audit trail
        before this answer, all or none, then imported into the ledger in the background."""
        from serving.events import record_events
        from serving.schemas import EventAck

        if (too_many := _batch(ctx, events, "events")) is not None:
            return too_many
        if not events:
            return _refusal(ctx, 400, "'events' is empty: send at least one event", "events")

        def work(principal: Any) -> EventsResponse:
            acks = record_events(self.runtime.audit, self.runtime.ledger, principal, events)
            return EventsResponse(
                accepted=len(acks), events=[EventAck(case_id=c, creditor=cr, seq=s, hash=h) for c, cr, s, h in acks]
            )

        return self._answer(ctx, work)

    @bentoml.api(route="/decision_status", input_spec=DecisionStatusRequest)
    def decision_status(self, ctx: bentoml.Context, decision_ids: list[str]) -> DecisionStatusResponse:
        """Where recommendations stand (up to 1,000 decision ids from `next_best_action`): a sensitive
        action is `pending` until a supervisor approves it (`approved`: take it) or overrides it
        (`overridden`: take `final_action` instead). A platform key sees its own creditor's only."""
        from serving.review.status import decision_statuses

        if (too_many := _batch(ctx, decision_ids, "decision_ids")) is not None:
            return too_many
        if not decision_ids:
            return _refusal(ctx, 400, "'decision_ids' is empty: name at least one decision", "decision_ids")

        def work(principal: Any) -> DecisionStatusResponse:
            found, unknown = decision_statuses(self.runtime.audit, principal, decision_ids)
            return DecisionStatusResponse.model_validate({"decisions": found, "unknown": unknown})

        return self._answer(ctx, work)

    @bentoml.api(route="/reload", input_spec=ReloadRequest)
    def reload(self, ctx: bentoml.Context, force: bool = False) -> ReloadResponse:
        """Load the champion models again now if the `champion` alias moved (always with `force`);
        the service also checks on its own every CONCORD_MODEL_POLL_SECONDS."""

        def work(principal: Any) -> ReloadResponse:
            from concord import audit

            changed = self.runtime.reload(force=force)
            versions = self.runtime.require().versions
            with audit.transaction(self.runtime.audit) as connection:
                audit.append(
                    connection,
                    "reload",
                    {"reloaded": changed, "model_versions": versions, "force": force},
                    actor=principal.actor,
                )
            return ReloadResponse(reloaded=changed, model_versions=versions)

        return self._answer(ctx, work)


if probe.enabled():  # benchmarks: where slow requests lose their time (serving.probe)
    NextBestAction.add_asgi_middleware(probe.Probe)  # type: ignore[attr-defined]
if spread.active():  # several workers: keep-alive connections spread over them (serving.spread)
    NextBestAction.add_asgi_middleware(spread.Spread)  # type: ignore[attr-defined]
NextBestAction.add_asgi_middleware(Gate)  # type: ignore[attr-defined]  # the decorator made a Service
