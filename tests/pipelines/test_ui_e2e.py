"""End to end: `dagster dev` on a temp DAGSTER_HOME (the repo's dagster.yaml) and a temp git + DVC workspace;
one materialization launched through the GraphQL API, the asset graph checked in headless Chromium."""

from __future__ import annotations

import shutil
import time

import pytest
from dev_server import DagsterDev, dagster_dev
from ui_browser import chromium_page, copy_artifact, find_chromium
from workspace_helpers import make_workspace

from pipelines.definitions import ASSETS, CHECKS
from pipelines.resources import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ASSET_NAMES = sorted(a.key.to_user_string() for a in ASSETS)
GROUPS = sorted({a.group_names_by_key[a.key] for a in ASSETS})

WORKSPACE_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on RepositoryLocation { name repositories { name jobs { name } } }
                        ... on PythonError { message } } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId status } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message stack }
  ... on Error { message } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
LATEST = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 1) { runId
      metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> DagsterDev:
    root = tmp_path_factory.mktemp("ui")
    workspace = make_workspace(root / "ws")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # pools, retries, no pop-up
    env = {"GAN_WORKSPACE": str(workspace), "GAN_STORE_URI": str(root / "store")}
    with dagster_dev(home, env, log=root / "dagster-dev.log") as dev:
        yield dev


def _asset_job(server: DagsterDev) -> dict:
    """The location and repository the code was loaded as (from the server, not assumed)."""
    entries = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    for entry in entries:
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        for repo in location["repositories"]:
            names = {j["name"] for j in repo["jobs"]}
            assert "retrain" in names
            job = next(n for n in sorted(names) if n.startswith("__ASSET_JOB"))
            return {
                "repositoryLocationName": location["name"],
                "repositoryName": repo["name"],
                "jobName": job,
            }
    raise AssertionError("no code location loaded")


def test_graphql_launch_materializes_raw_images(server):
    selector = {**_asset_job(server), "assetSelection": [{"path": ["raw_images"]}], "assetCheckSelection": []}
    launched = server.graphql(LAUNCH, {"params": {"selector": selector, "runConfigData": {}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline, status = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        status = server.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{server.log_tail()}"

    latest = server.graphql(LATEST, {"key": {"path": ["raw_images"]}})["assetOrError"]
    (materialization,) = latest["assetMaterializations"]
    assert materialization["runId"] == run_id
    count = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}["count"]
    assert count > 1000  # scikit-learn's digits: 1,797 images


def test_asset_graph_shows_the_chain_and_its_gates(server, tmp_path):
    executable, why = find_chromium()
    if executable is None:
        pytest.skip(why)
    expanded = ",".join(f"global@global:{g}" for g in GROUPS)  # the UI's own "expand all groups" state
    shot = tmp_path / "asset-graph.png"
    with chromium_page(executable) as page:
        page.goto(f"{server.url}/asset-groups?expanded={expanded}", wait_until="domcontentloaded")
        text = _wait_for_text(page, ASSET_NAMES, timeout=90)
        missing = [name for name in ASSET_NAMES if name not in text]
        text = _wait_for_text(page, ASSET_NAMES, timeout=30, absent="Loading")  # live status on the nodes
        page.screenshot(path=str(shot))
        kept = copy_artifact(shot, "asset-graph.png")
        assert not missing, f"not on the asset graph: {missing}"
        for kind in ("PyTorch", "dvc", "onnx", "S3"):  # kinds render as labels on the nodes
            assert kind in text, kind

        for check in CHECKS:
            asset, name = check.check_key.asset_key.to_user_string(), check.check_key.name
            page.goto(f"{server.url}/assets/{asset}?view=checks", wait_until="domcontentloaded")
            text = _wait_for_text(page, [name, "blocking"], timeout=60)
            assert name in text and "This is a blocking asset check" in text, f"{name} not shown on {asset}"
    assert shot.stat().st_size > 10_000 and kept.read_bytes() == shot.read_bytes()


def _wait_for_text(page, needles: list[str], timeout: float, absent: str | None = None) -> str:
    """The page's visible text once every needle is in it (and ``absent`` is not): the UI renders after its
    GraphQL queries answer."""
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        text = page.inner_text("body")
        if all(n in text for n in needles) and not (absent and absent in text):
            return text
        time.sleep(0.5)
    return text
