"""Start restores as runs of the Prefect ``restore`` deployment, over Prefect's REST API.

The app stays Prefect-free: this is two HTTP calls, the same ones the Prefect UI's "Run" button
makes. ``mediavault serve`` uses it when a Prefect API is configured and the deployment exists;
otherwise restores run in a thread of the server (``services.restore_in_background``).
"""

from __future__ import annotations

from typing import Any

import httpx

from mediavault.errors import TransientError

DEPLOYMENT = "restore/restore"


class PrefectRestoreStarter:
    def __init__(self, api_url: str, deployment: str = DEPLOYMENT, ui_url: str | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.deployment = deployment
        self.ui_url = ui_url.rstrip("/") if ui_url else None

    def deployment_id(self) -> str | None:
        """The deployment's id, or None when it is not deployed."""
        answer = httpx.get(f"{self.api_url}/deployments/name/{self.deployment}", timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()["id"]

    def __call__(self, media_id: str, actor: str) -> dict[str, Any]:
        try:
            deployment_id = self.deployment_id()
            if deployment_id is None:
                raise TransientError(f"the Prefect deployment {self.deployment} is not deployed")
            answer = httpx.post(
                f"{self.api_url}/deployments/{deployment_id}/create_flow_run",
                json={"parameters": {"media_id": media_id}, "tags": ["dashboard", f"by:{actor}"]},
                timeout=30,
            )
            answer.raise_for_status()
        except httpx.HTTPStatusError as exc:
            status, detail = exc.response.status_code, exc.response.text[:300]
            raise TransientError(f"could not start the restore flow: HTTP {status} {detail}") from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"could not start the restore flow: {type(exc).__name__}: {exc}") from exc
        run = answer.json()
        started = {"runner": "prefect", "flow_run_id": run["id"], "flow_run_name": run.get("name")}
        if self.ui_url:
            started["flow_run_url"] = f"{self.ui_url}/runs/flow-run/{run['id']}"
        return started


def prefect_restore_starter(api_url: str | None, ui_url: str | None) -> PrefectRestoreStarter | None:
    """A starter when ``api_url`` answers and has the restore deployment; None otherwise."""
    if not api_url:
        return None
    starter = PrefectRestoreStarter(api_url, ui_url=ui_url)
    try:
        return starter if starter.deployment_id() is not None else None
    except httpx.HTTPError:
        return None
