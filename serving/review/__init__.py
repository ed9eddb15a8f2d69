"""The supervisor's review page (``/review/`` of the service): queue, case view with explanations,
approve or override, disputes, champions' figures, funnel, audit trail; ``create_app`` makes it."""
