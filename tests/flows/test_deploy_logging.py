"""`lmpipe serve`'s runner after a cancel: when it cannot load the flow to look for its
on_cancellation hooks, one INFO line with the reason, no WARNING with a traceback (issue 32);
lmpipe's served flows have no such hooks, which is why nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.runner._hook_runner import HookRunner
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings
from prefect.states import Cancelling

from flows.deploy import NoCancellationHooks, quiet_hook_lookup
from flows.end_to_end import pipeline_flow
from flows.refresh import refresh_flow
from flows.train import training_flow


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def flow_run_lines():
    logger = logging.getLogger("prefect.flow_runs")
    handler, filters = Records(), list(logger.filters)
    logger.addHandler(handler)
    try:
        with temporary_settings({PREFECT_LOGGING_TO_API_ENABLED: False}):
            yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.filters[:] = filters


def cancel_with_a_failing_lookup() -> FlowRun:
    """prefect's own HookRunner after a cancel, its flow lookup failing as a load would."""

    async def cannot_load(flow_run):
        raise FileNotFoundError("flows/train.py")

    run = FlowRun(id=uuid.uuid4(), name="cancelled-run", flow_id=uuid.uuid4())
    asyncio.run(HookRunner(resolve_flow=cannot_load).run_cancellation_hooks(run, Cancelling()))
    return run


def test_without_the_filter_prefect_warns_with_a_traceback(flow_run_lines):
    cancel_with_a_failing_lookup()  # the check can fail: this is the line the filter changes
    (record,) = flow_run_lines
    assert record.levelno == logging.WARNING and record.exc_info
    assert record.getMessage().startswith("Runner failed to retrieve flow to execute on_cancel")


def test_a_failed_hook_lookup_is_one_info_line_with_its_reason(flow_run_lines):
    quiet_hook_lookup()
    quiet_hook_lookup()  # once only
    run = cancel_with_a_failing_lookup()
    (record,) = flow_run_lines
    assert record.levelno == logging.INFO and not record.exc_info
    assert record.getMessage() == (
        f"flow run {run.id!r}: no on_cancellation hooks to run (lmpipe's flows have none); the"
        " runner could not load the flow to check: FileNotFoundError('flows/train.py')"
    )
    logger = logging.getLogger("prefect.flow_runs")
    logger.warning("another warning")
    assert flow_run_lines[-1].levelno == logging.WARNING  # only that line changes
    # The Runner's own method logs the line with the id formatted in, and no arguments.
    try:
        raise ValueError("Flow run does not have an associated deployment")
    except ValueError:
        logger.warning(f"{NoCancellationHooks.PREFIX} for flow run {run.id!r}.", exc_info=True)
    assert flow_run_lines[-1].levelno == logging.INFO
    assert flow_run_lines[-1].getMessage() == (
        "flow run of this log: no on_cancellation hooks to run (lmpipe's flows have none); the"
        " runner could not load the flow to check:"
        " ValueError('Flow run does not have an associated deployment')"
    )


def test_the_served_flows_have_no_cancellation_hooks():
    """Why the line can be INFO: a hook here would make a failed lookup a real loss."""
    for served in (refresh_flow, training_flow, pipeline_flow):
        assert not served.on_cancellation_hooks, served.name
