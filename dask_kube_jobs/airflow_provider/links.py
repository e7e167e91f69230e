"""The ``Dask Dashboard`` extra link.

The operator pushes the dashboard URL to XCom under this link's key *before* waiting or
deferring, so the button works while the job runs -- the moment someone wants the dashboard.
At the end of the task Airflow calls :meth:`get_link` and stores its answer under the same key;
returning what was pushed keeps the link stable after the task ends.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

DASHBOARD_XCOM_KEY = "dashboard_url"


class DaskDashboardLink(BaseOperatorLink):
    """Opens the Dask dashboard of the task's DaskJob cluster."""

    name = "Dask Dashboard"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.providers.common.compat.sdk import XCom  # the configured XCom backend

        value = XCom.get_value(ti_key=ti_key, key=DASHBOARD_XCOM_KEY)
        return str(value) if value else ""
