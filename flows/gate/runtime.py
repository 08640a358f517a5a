"""How a gate runs in this process: Prefect settings (heartbeats; client retries stay Prefect's), the
Prefect API's reachability, and the fault-injection pause point. Tuning, kept out of the flow module."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from flows.gate.outcome import AuditFailedError, PrefectUnavailableError
from flows.lakehouse import LakehouseError

if TYPE_CHECKING:
    from prefect.settings import Settings


def pause_point(step: str) -> None:
    """Fault injection for the integrity tests: with ``WAP_PAUSE_AT=<step>`` the gate stops itself (SIGSTOP)
    just before that step (``audit`` or ``publish``; ``revert_merge``: a revert's merge into main), so a test can
    change the branch (or main) under a run that is provably at that point, then let it go on with SIGCONT.
    Unset, this does nothing."""
    if os.environ.get("WAP_PAUSE_AT") == step:
        import signal

        print(f"paused before {step} (pid {os.getpid()})")
        os.kill(os.getpid(), signal.SIGSTOP)


def prefect_transport_error(exc: BaseException) -> bool:
    """A transport failure of Prefect's own API client (the lakehouse raises LakehouseError subclasses)."""
    import httpx

    return isinstance(exc, httpx.TransportError)


THIS_RUN = threading.local()  # the outcome and flow run id of the gate running in this thread (`--all`: several)


def is_gate_verdict(exc: BaseException) -> bool:
    """The gate's own answer (blocked, bad input, lakehouse refused): reported as is, whatever Prefect's state."""
    from flows.audit import AuditConfigError
    from flows.datasets import DatasetError

    return isinstance(exc, AuditFailedError | LakehouseError | DatasetError | AuditConfigError | ValueError)


def lost_prefect_message(api: str, reason: str, flow_run_id: str | None) -> str:
    # The write task's rollback still ran (it needs the lakehouse, not Prefect): the branch is gone, or kept
    # with --keep-failed-branch; the lease was released either way, so `wap gc` may collect a kept branch.
    run = f"flow run {flow_run_id}" if flow_run_id else "the flow run"
    return (
        f"Prefect API at {api} became unreachable during the run ({reason}); main is unchanged; {run} stays"
        f" Running in Prefect, which could not be told: `prefect flow-run delete {flow_run_id or '<id>'}` once"
        " the server is back"
    )


def configured_prefect_api() -> str | None:
    """The Prefect API the gate will report to (PREFECT_API_URL, from the environment or the profile), or
    None when Prefect would start a temporary server of its own."""
    from prefect.settings import PREFECT_API_URL

    return (PREFECT_API_URL.value() or "").rstrip("/") or None


def prefect_unreachable(api: str, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> str | None:
    """Why the Prefect API at `api` cannot be reached (one line), or None if it answers at all.

    Any HTTP answer counts as reachable (even 401 or 404: the Prefect client then reports the real problem);
    only transport failures (refused, unresolvable, timed out, reset) count as unreachable. The certificate
    is not checked: this only asks whether something listens, and sends no credentials.
    """
    import httpx

    try:
        httpx.get(f"{api}/health", timeout=httpx.Timeout(read_timeout, connect=connect_timeout), verify=False)
    except httpx.TransportError as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def check_prefect_api() -> None:
    """Before any branch exists: refuse to start a gate whose Prefect API does not answer (exit 3, seconds)."""
    api = configured_prefect_api()
    if api and (reason := prefect_unreachable(api)):
        raise PrefectUnavailableError(f"Prefect API at {api} is unreachable: {reason}")


_QUIET_SETTINGS: list[tuple[Settings, Settings]] = []  # (settings, the same as gate settings): the last pair
_QUIET_LOCK = threading.Lock()  # `wap run --all` starts gates from several threads


def gate_settings() -> contextlib.AbstractContextManager:
    """Prefect's settings for a gate run: no flow-run heartbeats unless the user set a frequency.

       Prefect's client retries (``PREFECT_CLIENT_MAX_RETRIES``, default 5: ~62 s per request) stay as they
       are: a busy server answers 503 for seconds at a time (eight gates at once on a SQLite-backed server did),
       and a gate that gave up after 2 retries failed runs that would have published. A user who prefers a
       quick "not published" when the server has died sets ``PREFECT_CLIENT_MAX_RETRIES=2`` (~6 s per request).
    What the public ``temporary_settings(set_defaults=...)`` does, with the copied settings
       kept for the next run: that copy costs 47-178 ms per run on this 2-core machine (0.05-0.2 ms cached), 10-35%
       of a warm 0.5 s gate run. The price is Prefect internals (``SettingsContext`` built by hand,
       ``copy_with_update``, ``model_fields_set``), guarded by tests/test_upstream_contract.py."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = get_settings_context()
    updates: dict = {}
    if "heartbeat_frequency" not in context.settings.flows.model_fields_set:
        updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    if not updates:  # the user's choices stand
        return contextlib.nullcontext()
    with _QUIET_LOCK:
        if not _QUIET_SETTINGS or _QUIET_SETTINGS[0][0] is not context.settings:
            quiet = context.settings.copy_with_update(updates=updates)
            _QUIET_SETTINGS[:] = [(context.settings, quiet)]
        quiet = _QUIET_SETTINGS[0][1]
    return SettingsContext(profile=context.profile, settings=quiet)
