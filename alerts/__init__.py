"""Alerting: rules from ``[alerts]`` in the settings, evaluated against the warehouse, delivered once
per event through apprise.

::

    rules.py       [alerts] → AlertSettings (targets, rules), validated once with the settings
    conditions.py  what each rule kind sees at a moment (SQL in sql/alerts/)
    events.py      check(): open / close events, alert_events and alert_deliveries, messages
    delivery.py    apprise, with retries and backoff; never raises for a target that is down
    monitor.py     checks beside the IRIS worker, on a thread of their own
"""
