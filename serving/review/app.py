"""The review page's routes: login, the queue, a case with its explanation, approve or override,
disputes, the champions' figures, the funnel and the audit trail, as a Starlette ASGI app.

``create_app(context)`` makes the app; the BentoML service mounts it at ``/review`` and hands it
its context on start. Pages are rendered on the server (Jinja2), Chinese unless ``?lang=en``;
tools may call with ``Authorization: Bearer KEY`` and ``Accept: application/json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from concord.audit import records, verify
from serving.review import access, case_view, store, words
from serving.review.context import ReviewContext
from serving.review.funnel import funnel
from serving.review.words import LANGUAGES, text

TEMPLATES = Path(__file__).parent / "templates"
FUNNEL_SECONDS, DISPUTES_SECONDS = 60.0, 30.0  # whole-ledger scans, computed at most this often
Changed = Response | tuple[dict[str, Any], str]  # a refusal, or (JSON answer, page to go back to)
Change = Callable[[Request, "access.Visitor", dict[str, str]], Changed]
CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'"  # no script at all


class ReviewApp:
    """The page's handlers over one :class:`ReviewContext` (given now, or attached on start)."""

    def __init__(self, context: ReviewContext | None = None) -> None:
        self.context = context
        self.templates = Jinja2Templates(directory=str(TEMPLATES))

    def ctx(self) -> ReviewContext:
        if self.context is None:
            from concord.settings import get_settings

            self.context = ReviewContext(get_settings())
        return self.context

    # -- helpers --------------------------------------------------------------------------
    def lang(self, request: Request) -> str:
        wanted = request.query_params.get("lang")
        if wanted in LANGUAGES:
            request.session["lang"] = wanted
        lang = request.session.get("lang")
        return lang if lang in LANGUAGES else "zh"

    def page(self, request: Request, name: str, code: int = 200, **values: Any) -> Response:
        lang = self.lang(request)
        root = request.scope.get("root_path", "")
        policy = self.ctx().policy
        values.update(
            lang=lang,
            t=lambda key: text(key, lang),
            root=root,
            csrf=access.csrf_token(request),
            feature=lambda n: words.feature_name(n, lang),
            lang_url=lambda other: _lang_url(request, other),
            stage_name=lambda s: words.policy_stage_name(policy, s, lang),
            workflow_name=lambda w: words.workflow_name(policy, w, lang),
            funnel_stage=lambda s: words.stage_name(s, lang),
            outcome=lambda o: words.outcome_name(o, lang),
            num=words.number,
            action_name=lambda a: words.action_name(policy, a, lang),
            when=case_view.local_time,
            flag_name=lambda f: words.flag_name(policy, f, lang),
            path=request.url.path,
            signed_in=bool(request.session.get("key_id")),
        )
        response = self.templates.TemplateResponse(request, name, values, status_code=code)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = CSP
        return response

    def guard(self, request: Request) -> access.Visitor | Response:
        """The supervisor calling, or the response that refuses everyone else."""
        who, tried = access.visitor(request, self.ctx().audit)
        if who is None:
            if tried:
                return JSONResponse({"detail": "the key is not valid or has been revoked"}, status_code=401)
            root = request.scope.get("root_path", "")
            return RedirectResponse(f"{root}/login", status_code=303)
        if not who.may_review:
            if who.via == "bearer" or _wants_json(request):
                return JSONResponse(
                    {"detail": f"the review page is for supervisors; this key's role is {who.role}"}, status_code=403
                )
            return self.page(request, "error.html", 403, message=text("forbidden", self.lang(request)) + who.role)
        return who

    def refuse(self, request: Request, who: access.Visitor, message: str, status: int) -> Response:
        if who.via == "bearer" or _wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        return self.page(request, "error.html", status, message=message)

    async def form(self, request: Request, who: access.Visitor) -> dict[str, str] | None:
        """The posted form, or None when a session's form lacks the right CSRF token."""
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        if who.via == "session" and not access.csrf_ok(request, values.get("csrf")):
            return None
        return values

    # -- login ----------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        lang = self.lang(request)
        if request.method == "GET":
            return self.page(request, "login.html")
        form = await request.form()
        if not access.csrf_ok(request, form.get("csrf")):
            return self.page(request, "login.html", 403, error="CSRF")
        from serving.auth import authenticate

        principal = authenticate(self.ctx().audit, str(form.get("key") or ""))
        if principal is None:
            return self.page(request, "login.html", 401, error=text("bad_key", lang))
        if principal.role not in access.REVIEW_ROLES:
            return self.page(request, "error.html", 403, message=text("forbidden", lang) + principal.role)
        access.log_in(request, principal.key_id, principal.role)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/queue", status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if access.csrf_ok(request, form.get("csrf")):
            lang = request.session.get("lang")
            request.session.clear()
            if lang:
                request.session["lang"] = lang
        return RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/queue", status_code=303)

    # -- the queue ------------------------------------------------------------------------
    async def queue(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        context = self.ctx()
        chosen = {name: request.query_params.get(name) or None for name in store.FILTERS}
        status = request.query_params.get("status") or "pending"
        rows = store.queue(context.audit, context.ledger, status, **chosen)
        disputes = context.cached(
            ("disputes", chosen["creditor"]),
            DISPUTES_SECONDS,
            lambda: store.open_disputes(context.ledger, chosen["creditor"]),
        )
        if _wants_json(request):
            return JSONResponse({"decisions": [_plain(r) for r in rows], "disputes": [_plain(d) for d in disputes]})
        options = store.filter_values(context.audit)
        options["risk_flag"] = [flag.id for flag in context.policy.court.flags]
        options["mediator"] = store.mediator_ids(context.ledger)
        return self.page(
            request,
            "queue.html",
            rows=rows,
            disputes=disputes,
            chosen=chosen,
            status=status,
            options=options,
            statuses=list(store.STATUSES),
        )

    # -- one case -------------------------------------------------------------------------
    async def decision_page(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        context = self.ctx()
        decision = store.decision(context.audit, request.path_params["decision_id"])
        case = case_view.find_case_row(context, decision["case_id"], decision["creditor"]) if decision else None
        if decision is None or case is None:
            return self.refuse(request, who, "no such recommendation", 404)
        return self.case_page(request, case, decision)

    async def case_by_pk(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        context = self.ctx()
        case = case_view.case_by_pk(context, request.path_params["case_pk"])
        if case is None:
            return self.refuse(request, who, "no such case", 404)
        return self.case_page(request, case, store.latest_decision(context.audit, case["case_id"], case["creditor"]))

    def case_page(
        self,
        request: Request,
        case: dict[str, Any],
        decision: dict[str, Any] | None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        view = case_view.build(self.ctx(), case, decision, self.lang(request))
        actions = [a.name for a in self.ctx().policy.catalogue.actions]
        return self.page(
            request, "case.html", status, view=view, actions=actions, error=error, done=request.query_params.get("done")
        )

    async def review(self, request: Request) -> Response:
        """Approve or override a recommendation (the form's ``verdict``)."""
        return await self.act(request, self._review)

    async def resolve(self, request: Request) -> Response:
        """Resolve a case's open dispute."""
        return await self.act(request, self._resolve)

    async def act(self, request: Request, change: Change) -> Response:
        """A change posted by a supervisor's form or tool: guard and CSRF check, then ``change``, which
        refuses (a response) or gives its JSON answer and the page (under the mount) people go back to."""
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        values = await self.form(request, who)
        if values is None:
            return self.refuse(request, who, "the form's CSRF token is missing or wrong; reload the page", 403)
        done = change(request, who, values)
        if isinstance(done, Response):
            return done
        answer, page = done
        if who.via == "bearer" or _wants_json(request):
            return JSONResponse(answer)
        return RedirectResponse(f"{request.scope.get('root_path', '')}{page}?done=1", status_code=303)

    def _review(self, request: Request, who: access.Visitor, values: dict[str, str]) -> Changed:
        context = self.ctx()
        decision_id = request.path_params["decision_id"]
        current = store.decision(context.audit, decision_id)
        case = case_view.find_case_row(context, current["case_id"], current["creditor"]) if current else None
        if current is None or case is None:
            return self.refuse(request, who, "no such recommendation", 404)
        payload = case_view.recorded_recommendation(context, decision_id) or {}
        blocked = {b["action"]: tuple(b.get("rules", ())) for b in case_view._answer_of(payload).get("blocked", [])}
        verdict = store.Review(values.get("verdict", ""), values.get("action"), values.get("reason", ""))
        try:
            state = store.review(
                context.audit,
                decision_id,
                verdict,
                who.actor,
                actions=tuple(context.policy.catalogue.names),
                blocked=blocked,
            )
        except store.ReviewRefused as refused:
            if who.via == "bearer" or _wants_json(request):
                return JSONResponse({"detail": str(refused)}, status_code=refused.status)
            return self.case_page(request, case, current, error=str(refused), status=refused.status)
        return _plain(state), f"/decisions/{decision_id}"

    def _resolve(self, request: Request, who: access.Visitor, values: dict[str, str]) -> Changed:
        context = self.ctx()
        case = case_view.case_by_pk(context, request.path_params["case_pk"])
        if case is None:
            return self.refuse(request, who, "no such case", 404)
        try:
            store.resolve(context.ledger, context.audit, case, who.actor, values.get("note", ""))
            context.forget("disputes")
        except store.ReviewRefused as refused:
            return self.refuse(request, who, str(refused), refused.status)
        return {"case_id": case["case_id"], "creditor": case["creditor"], "resolved": True}, f"/cases/{case['case_pk']}"

    # -- figures, funnel, audit -----------------------------------------------------------
    async def models(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        return self.page(request, "models.html", cards=self.ctx().figures.cards())

    async def plot(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        data = self.ctx().figures.plot(request.path_params["model"], request.path_params["name"])
        if data is None:
            return self.refuse(request, who, "no such plot", 404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    async def funnel_page(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        creditor = request.query_params.get("creditor") or None
        rows = self.ctx().cached(("funnel", creditor), FUNNEL_SECONDS, lambda: funnel(self.ctx().ledger, creditor))
        if _wants_json(request):
            return JSONResponse(
                [{**r.__dict__, "reach_rate": r.reach_rate, "settle_rate": r.settle_rate} for r in rows]
            )
        return self.page(request, "funnel.html", rows=rows)

    async def audit_page(self, request: Request) -> Response:
        who = self.guard(request)
        if isinstance(who, Response):
            return who
        query = request.query_params
        kind = query.get("kind") or None
        found = records(
            self.ctx().audit,
            kind=kind,
            case_id=query.get("case_id") or None,
            decision_id=query.get("decision_id") or None,
            limit=200,
        )
        found.reverse()  # newest first
        if _wants_json(request):
            return JSONResponse([_plain(e.__dict__) for e in found])
        return self.page(
            request,
            "audit.html",
            entries=found,
            kind=kind or "",
            case_id=query.get("case_id") or "",
            chain=verify(self.ctx().audit) if query.get("verify") else None,
        )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _lang_url(request: Request, lang: str) -> str:
    """This page in the other language (its filters kept)."""
    url = request.url.include_query_params(lang=lang)
    return f"{url.path}?{url.query}"


def create_app(context: ReviewContext | None = None, mount_path: str = "/review") -> Starlette:
    """The review page as an ASGI app (mount it at ``/review``); ``context`` may be given later
    as ``app.state.review.context = ReviewContext(...)``."""
    handlers = ReviewApp(context)
    secret = _LazySecret(handlers)
    routes = [
        Route("/", handlers.home),
        Route("/login", handlers.login, methods=["GET", "POST"]),
        Route("/logout", handlers.logout, methods=["POST"]),
        Route("/queue", handlers.queue),
        Route("/decisions/{decision_id}", handlers.decision_page),
        Route("/decisions/{decision_id}/review", handlers.review, methods=["POST"]),
        Route("/cases/{case_pk:int}", handlers.case_by_pk),
        Route("/cases/{case_pk:int}/resolve", handlers.resolve, methods=["POST"]),
        Route("/models", handlers.models),
        Route("/models/{model}/{name}", handlers.plot),
        Route("/funnel", handlers.funnel_page),
        Route("/audit", handlers.audit_page),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,  # type: ignore[arg-type]
            session_cookie=access.SESSION_COOKIE,
            max_age=access.SESSION_SECONDS,
            same_site="strict",
            path=mount_path,
        )
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.review = handlers
    return app


class _LazySecret:
    """The session secret, derived when first needed (no key file is read at import time)."""

    def __init__(self, handlers: ReviewApp) -> None:
        self.handlers = handlers

    def __str__(self) -> str:
        return access.session_secret(self.handlers.ctx().settings)
