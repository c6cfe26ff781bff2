"""The evidence a person looks for, in the UI, without a click: after a tiny `retrain` launched through the
UI's GraphQL API (`dagster dev` + the loopback image server, as `make ui` starts them), the sample grid is
on trained_generator's page and the FID with its interval on generator_evaluation's, and an edit of
params.yaml marks processed_dataset stale once the sources are observed. Screenshots are kept in
outputs/test-artifacts/."""

from __future__ import annotations

import shutil
import time

import pytest
import yaml
from dev_server import DagsterDev, dagster_dev
from ui_browser import chromium_page, copy_artifact, find_chromium
from workspace_helpers import make_workspace, tiny_overrides

from pipelines.metadata import ARTIFACT_BASE_URL
from pipelines.resources import REPO_ROOT
from pipelines.ui import artifact_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { ... on RepositoryLocation { name repositories { name } } } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on Error { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-evidence")
    workspace = make_workspace(root / "ws")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    with artifact_server(workspace / "outputs") as images:
        env = {
            "GAN_WORKSPACE": str(workspace),
            "GAN_STORE_URI": str(root / "store"),
            ARTIFACT_BASE_URL: images,
        }
        with dagster_dev(home, env, log=root / "dagster-dev.log") as dev:
            yield dev, workspace


def _selector(server: DagsterDev, job: str) -> dict:
    for entry in server.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]:
        location = entry["locationOrLoadError"]
        return {
            "repositoryLocationName": location["name"],
            "repositoryName": location["repositories"][0]["name"],
            "jobName": job,
        }
    raise AssertionError("no code location")


def _run(server: DagsterDev, params: dict, timeout: float = 900) -> dict:
    launched = server.graphql(LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = server.graphql(RUN, {"id": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish:\n{server.log_tail()}")


def _wait_visible_image(page, alt: str, timeout: float = 90) -> bool:
    """An <img alt=...> that is on screen and loaded (naturalWidth > 0): shown, not behind a link."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        img = page.locator(f'img[alt="{alt}"]').first
        if img.count() and img.is_visible() and img.evaluate("i => i.complete && i.naturalWidth > 0"):
            return True
        time.sleep(0.5)
    return False


def _wait_text(page, needles: list[str], timeout: float = 90) -> str:
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        if all(n in text for n in needles):
            return text
        time.sleep(0.5)
    return text


def test_evidence_on_the_asset_pages_and_params_staleness(ui):
    server, workspace = ui
    executable, why = find_chromium()
    if executable is None:
        pytest.skip(why)
    config = {"resources": {"gan_config": {"config": tiny_overrides()}}}
    run = _run(server, {"selector": _selector(server, "retrain"), "runConfigData": config})
    assert run["status"] == "SUCCESS", server.log_tail()

    with chromium_page(executable, width=1600, height=1400) as page:
        page.goto(f"{server.url}/assets/trained_generator", wait_until="domcontentloaded")
        shown = _wait_visible_image(page, "samples")
        page.screenshot(path=str(workspace / "trained.png"), full_page=True)
        copy_artifact(workspace / "trained.png", "ui-trained-generator.png")
        assert shown, "the sample grid is not shown on trained_generator's page"

        page.goto(f"{server.url}/assets/generator_evaluation", wait_until="domcontentloaded")
        shown = _wait_visible_image(page, "evaluation samples")
        plot_shown = _wait_visible_image(page, "FID over evaluations")
        text = _wait_text(page, ["fid_ci95_low", "floor"])
        page.screenshot(path=str(workspace / "evaluation.png"), full_page=True)
        copy_artifact(workspace / "evaluation.png", "ui-generator-evaluation.png")
        assert shown, "the evaluation samples are not shown on generator_evaluation's page"
        assert plot_shown, "the FID plot is not shown on generator_evaluation's page"
        assert "fid_ci95_low" in text and "floor" in text

        # Dagster's own plots of the float metadata are one click away (its Table/Plots toggle keeps no URL).
        page.get_by_role("button", name="Plots").first.click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not page.locator("canvas").count():
            time.sleep(0.5)
        page.screenshot(path=str(workspace / "plots.png"), full_page=True)
        copy_artifact(workspace / "plots.png", "ui-generator-evaluation-plots.png")
        assert page.locator("canvas").count() > 0, "no metadata plots on generator_evaluation's page"

        # Edit params.yaml; observing the sources (what each run and the daemon do) marks the data stale.
        params_file = workspace / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        params["preprocess"]["val_fraction"] = 0.25
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        observe = {
            "selector": {
                **_selector(server, "__ASSET_JOB"),
                "assetSelection": [{"path": ["preprocess_params"]}],
            },
            "runConfigData": {},
        }
        assert _run(server, observe, timeout=180)["status"] == "SUCCESS"
        page.goto(f"{server.url}/assets/processed_dataset", wait_until="domcontentloaded")
        text = _wait_text(page, ["Unsynced"], timeout=60)  # Dagster's word for stale (with its causes)
        page.screenshot(path=str(workspace / "stale.png"), full_page=True)
        copy_artifact(workspace / "stale.png", "ui-processed-dataset-stale.png")
        assert "Unsynced" in text, "processed_dataset is not shown stale after the params.yaml edit"
